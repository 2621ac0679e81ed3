-- One row per MCP tool call (SPEC §13): who, which tool and operation, Verity's status
-- and how long it took. Never arguments or bodies (they carry personal data).
CREATE TABLE mcp_tool_calls (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    at          timestamptz NOT NULL DEFAULT now(),
    principal   text NOT NULL,
    tool        text NOT NULL,
    method      text NOT NULL,
    path        text NOT NULL,
    status      integer NOT NULL,
    duration_ms integer NOT NULL,
    error       text
);
CREATE INDEX mcp_tool_calls_at_idx ON mcp_tool_calls (at);
