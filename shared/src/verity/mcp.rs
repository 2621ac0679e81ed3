//! The MCP server over Verity's catalog (SPEC §13), one toolset for both transports:
//! `mcp-http` (rmcp's streamable HTTP in stateless JSON mode) and the `df-mcp` stdio
//! binary. Tools come from [`crate::domain::verity::tools::Toolset`]; arguments are validated before
//! any request; results are JSON text plus structured content, cut above
//! `MCP_MAX_RESULT_BYTES`; every call leaves one audit row (who, tool, status,
//! duration — never arguments or bodies).
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool as McpTool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::guard::SmsGuard;
use super::principal::audit;
pub use crate::domain::verity::access::Principal;
use crate::domain::verity::access::{may_call, sends};
use crate::domain::verity::catalog::Method;
use crate::domain::verity::tools::{to_legacy_request, to_request, validate, Tool, Toolset};
use crate::lambda::{ConfigError, Settings};
use crate::providers::verity_api::VerityClient;

/// Which tools `tools/list` shows (`MCP_TOOLS_MODE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolsMode {
    All,
    /// Only the domains in `MCP_TOOL_DOMAINS`.
    Filtered(Vec<String>),
    /// Three meta-tools (list, schema, invoke) for clients that cannot hold 300 tools.
    Dynamic,
}

#[derive(Debug, Clone)]
pub struct McpSettings {
    pub mode: ToolsMode,
    pub read_only: bool,
    pub max_result_bytes: usize,
    /// `MCP_PAGE_SIZE`: unset, every tool in one page (several clients read only one).
    pub page_size: Option<usize>,
    /// `MCP_MAX_TOOL_NAME` (default 48).
    pub max_tool_name: usize,
    /// Per tool call, inside the transport's own limit.
    pub call_budget: Duration,
}

impl McpSettings {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let mode = match s
            .get_or("MCP_TOOLS_MODE", "all")
            .to_ascii_lowercase()
            .as_str()
        {
            "all" => ToolsMode::All,
            "dynamic" => ToolsMode::Dynamic,
            "filtered" => ToolsMode::Filtered(
                s.get_or("MCP_TOOL_DOMAINS", "")
                    .split(',')
                    .map(|d| d.trim().to_ascii_lowercase())
                    .filter(|d| !d.is_empty())
                    .collect(),
            ),
            other => {
                return Err(ConfigError::Invalid {
                    name: "MCP_TOOLS_MODE",
                    reason: format!("{other:?} is not all, filtered or dynamic"),
                })
            }
        };
        Ok(McpSettings {
            mode,
            read_only: s.parse_or("MCP_READ_ONLY", false)?,
            max_result_bytes: s.parse_or("MCP_MAX_RESULT_BYTES", 50_000usize)?,
            page_size: match s.get("MCP_PAGE_SIZE") {
                Some(_) => Some(s.parse_or("MCP_PAGE_SIZE", 100usize)?.max(1)),
                None => None,
            },
            max_tool_name: s
                .parse_or(
                    "MCP_MAX_TOOL_NAME",
                    crate::domain::verity::tools::MAX_NAME_LEN,
                )?
                .clamp(24, 64),
            call_budget: Duration::from_secs(s.parse_or("MCP_CALL_BUDGET_SECONDS", 25u64)?),
        })
    }
}

struct Inner {
    toolset: Arc<Toolset>,
    client: VerityClient,
    settings: McpSettings,
    audit: Option<Pool>,
    /// The principal of a transport with one caller (stdio).
    fixed_principal: Option<Principal>,
    guard: SmsGuard,
}

/// The MCP server handler (cheap to clone: the streamable HTTP service builds one per
/// request in stateless mode).
#[derive(Clone)]
pub struct VerityMcp {
    inner: Arc<Inner>,
}

const META_LIST: &str = "list_verity_endpoints";
const META_SCHEMA: &str = "get_verity_endpoint_schema";
const META_INVOKE: &str = "invoke_verity_endpoint";

impl VerityMcp {
    pub fn new(
        toolset: Arc<Toolset>,
        client: VerityClient,
        settings: McpSettings,
        audit: Option<Pool>,
        fixed_principal: Option<Principal>,
        guard: SmsGuard,
    ) -> Self {
        VerityMcp {
            inner: Arc::new(Inner {
                toolset,
                client,
                settings,
                audit,
                fixed_principal,
                guard,
            }),
        }
    }

    /// Whether a tool is offered under the settings (hidden tools cannot be called).
    fn visible(&self, tool: &Tool) -> bool {
        let s = &self.inner.settings;
        if s.read_only && !tool.read_only {
            return false;
        }
        match &s.mode {
            ToolsMode::Filtered(domains) => {
                let op = self.inner.toolset.operation(tool);
                domains.iter().any(|d| d == op.domain())
            }
            _ => true,
        }
    }

    /// Visible and within the caller's rights.
    fn usable(&self, tool: &Tool, who: &Principal) -> bool {
        self.visible(tool) && may_call(who, self.inner.toolset.operation(tool)).is_ok()
    }

    /// The catalog tools offered to `who` (all and filtered modes; dynamic mode's `list`).
    pub fn offered(&self, who: &Principal) -> Vec<&Tool> {
        self.inner
            .toolset
            .all()
            .iter()
            .filter(|t| self.usable(t, who))
            .collect()
    }

    /// What the tool does, for clients deciding what to ask a person first: GET reads;
    /// DELETE and every operation that sends or calls is destructive and not idempotent.
    fn to_mcp(&self, tool: &Tool) -> McpTool {
        let schema = tool.input_schema.as_object().cloned().unwrap_or_default();
        let op = self.inner.toolset.operation(tool);
        let sending = sends(&self.inner.guard.operations, op);
        let annotations = ToolAnnotations::new()
            .read_only(op.method == Method::Get)
            .destructive(op.method == Method::Delete || sending)
            .idempotent(!sending && op.method.idempotent())
            .open_world(true);
        McpTool::new(
            tool.name.clone(),
            tool.description.clone(),
            Arc::new(schema),
        )
        .annotate(annotations)
    }

    fn meta_tools() -> Vec<McpTool> {
        let obj = |v: Value| Arc::new(v.as_object().cloned().unwrap_or_default());
        vec![
            McpTool::new(
                META_LIST,
                "List Verity's API operations (name, method, path, description); filter by domain or text.",
                obj(json!({"type": "object", "properties": {
                    "domain": {"type": "string"}, "query": {"type": "string"},
                    "cursor": {"type": "string"}}, "additionalProperties": false})),
            )
            .annotate(ToolAnnotations::new().read_only(true)),
            McpTool::new(
                META_SCHEMA,
                "The input schema of one operation, by the name list_verity_endpoints gave.",
                obj(json!({"type": "object", "properties": {"name": {"type": "string"}},
                    "required": ["name"], "additionalProperties": false})),
            )
            .annotate(ToolAnnotations::new().read_only(true)),
            McpTool::new(
                META_INVOKE,
                "Call one operation with arguments matching its schema.",
                obj(json!({"type": "object", "properties": {"name": {"type": "string"},
                    "arguments": {"type": "object"}}, "required": ["name"], "additionalProperties": false})),
            ),
        ]
    }

    /// One page of `items` from `cursor` (an offset we issued).
    fn page<T: Clone>(
        &self,
        items: &[T],
        cursor: Option<&str>,
    ) -> Result<(Vec<T>, Option<String>), McpError> {
        let start = match cursor {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= items.len())
                .ok_or_else(|| {
                    McpError::invalid_params("cursor is not one this server issued", None)
                })?,
        };
        let size = self.inner.settings.page_size.unwrap_or(usize::MAX);
        let end = start.saturating_add(size).min(items.len());
        let next = (end < items.len()).then(|| end.to_string());
        Ok((items[start..end].to_vec(), next))
    }

    /// `tools/call` for a catalog tool: rights, arguments, the opt-out guard, then the
    /// request; every outcome audited. An unknown (or hidden) tool is a protocol error;
    /// what the model can correct — forbidden, invalid arguments, an opted-out
    /// recipient — is a tool result with `isError`.
    pub async fn call_catalog_tool(
        &self,
        name: &str,
        args: Map<String, Value>,
        principal: &Principal,
    ) -> Result<CallToolResult, McpError> {
        let started = Instant::now();
        let Some(tool) = self.inner.toolset.get(name).filter(|t| self.visible(t)) else {
            let hints: Vec<&str> = self
                .inner
                .toolset
                .suggestions(name)
                .into_iter()
                .filter(|n| {
                    self.inner
                        .toolset
                        .get(n)
                        .is_some_and(|t| self.usable(t, principal))
                })
                .collect();
            audit(
                self.inner.audit.as_ref(),
                principal,
                name,
                "",
                "",
                404,
                started.elapsed(),
                Some("unknown tool".into()),
            )
            .await;
            return Err(McpError::invalid_params(
                format!("unknown tool {name:?}"),
                Some(json!({"didYouMean": hints})),
            ));
        };
        let op = self.inner.toolset.operation(tool);
        let refuse = |status: i32, code: &str, message: String| {
            let body = json!({"status": status, "error": {"code": code, "message": message}});
            (status, message, body)
        };
        let refusal = if let Err(denied) = may_call(principal, op) {
            Some(refuse(403, "FORBIDDEN", denied.to_string()))
        } else if let Err(e) = validate(tool, &args) {
            Some(refuse(400, "INVALID_ARGUMENTS", e.to_string()))
        } else {
            None
        };
        let request = match refusal {
            Some(r) => Err(r),
            None => match tool.alias_of {
                Some(_) => to_legacy_request(op, &args),
                None => to_request(op, &args),
            }
            .map_err(|e| refuse(400, "INVALID_ARGUMENTS", e)),
        };
        let checked = match request {
            Ok(r) => match self
                .inner
                .guard
                .check(op, r.body.as_ref(), "verity_mcp")
                .await
            {
                Ok(pass) => Ok((r, pass)),
                Err(blocked) => Err(refuse(
                    blocked.status() as i32,
                    blocked.code(),
                    blocked.to_string(),
                )),
            },
            Err(r) => Err(r),
        };
        let (request, pass) = match checked {
            Ok(ok) => ok,
            // Refused before anything reached Verity: audited, and the model's to fix.
            Err((status, message, body)) => {
                audit(
                    self.inner.audit.as_ref(),
                    principal,
                    &tool.name,
                    op.method.as_str(),
                    &op.path,
                    status,
                    started.elapsed(),
                    Some(message),
                )
                .await;
                return Ok(self.result(&body, true));
            }
        };
        let answer = self
            .inner
            .client
            .send(&request, &[], started + self.inner.settings.call_budget)
            .await;
        let status = answer.as_ref().map(|u| u.status).unwrap_or(0);
        if let Some(pass) = pass {
            pass.settle(status).await;
        }
        audit(
            self.inner.audit.as_ref(),
            principal,
            &tool.name,
            op.method.as_str(),
            &op.path,
            status as i32,
            started.elapsed(),
            answer.as_ref().err().map(|e| e.to_string()),
        )
        .await;
        Ok(match answer {
            Ok(up) if up.ok() => self.result(&up.body, false),
            Ok(up) => self.result(
                &json!({"status": up.status, "error": up.error_message(), "details": up.body}),
                true,
            ),
            Err(e) => self.result(&json!({"status": null, "error": e.to_string()}), true),
        })
    }

    /// JSON text (cut above the limit, saying so) plus structured content when whole.
    fn result(&self, body: &Value, is_error: bool) -> CallToolResult {
        let text = serde_json::to_string_pretty(body).unwrap_or_default();
        let max = self.inner.settings.max_result_bytes;
        let (text, whole) = if text.len() > max {
            let mut cut = max;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            (
                format!(
                    "{}\n[truncated: the result is {} bytes; {} shown (MCP_MAX_RESULT_BYTES). Narrow the request (limit, filters) for the rest.]",
                    &text[..cut],
                    text.len(),
                    cut
                ),
                false,
            )
        } else {
            (text, true)
        };
        let mut r = if is_error {
            CallToolResult::error(vec![ContentBlock::text(text)])
        } else {
            CallToolResult::success(vec![ContentBlock::text(text)])
        };
        if whole && body.is_object() {
            r.structured_content = Some(body.clone());
        }
        r
    }

    fn principal(&self, ctx: &RequestContext<RoleServer>) -> Principal {
        if let Some(p) = &self.inner.fixed_principal {
            return p.clone();
        }
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .cloned()
            // The HTTP transport always sets one; no rights without it.
            .unwrap_or_else(|| Principal {
                id: "unknown".into(),
                read_only: true,
                domains: Some(Vec::new()),
                admin: false,
            })
    }

    async fn dynamic_call(
        &self,
        name: &str,
        args: Map<String, Value>,
        principal: &Principal,
    ) -> Result<CallToolResult, McpError> {
        match name {
            META_LIST => {
                let domain = args
                    .get("domain")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase);
                let query = args
                    .get("query")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase);
                let rows: Vec<Value> = self
                    .offered(principal)
                    .into_iter()
                    .filter(|t| t.alias_of.is_none())
                    .filter(|t| domain.as_ref().is_none_or(|d| self.inner.toolset.operation(t).domain() == d))
                    .filter(|t| query.as_ref().is_none_or(|q| t.name.contains(q.as_str()) || t.description.to_ascii_lowercase().contains(q.as_str())))
                    .map(|t| {
                        let op = self.inner.toolset.operation(t);
                        json!({"name": t.name, "method": op.method.as_str(), "path": op.path, "description": t.description})
                    })
                    .collect();
                let (page, next) = self.page(&rows, args.get("cursor").and_then(Value::as_str))?;
                Ok(self.result(
                    &json!({"endpoints": page, "nextCursor": next, "total": rows.len()}),
                    false,
                ))
            }
            META_SCHEMA => {
                let wanted = args.get("name").and_then(Value::as_str).unwrap_or_default();
                let tool = self
                    .inner
                    .toolset
                    .get(wanted)
                    .filter(|t| self.usable(t, principal))
                    .ok_or_else(|| {
                        McpError::invalid_params(format!("unknown endpoint name {wanted:?}"), None)
                    })?;
                Ok(self.result(&json!({"name": tool.name, "description": tool.description, "inputSchema": tool.input_schema}), false))
            }
            META_INVOKE => {
                let wanted = args
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let inner = match args.get("arguments") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(o)) => o.clone(),
                    Some(_) => {
                        return Err(McpError::invalid_params(
                            "arguments must be an object",
                            None,
                        ))
                    }
                };
                self.call_catalog_tool(&wanted, inner, principal).await
            }
            other => Err(McpError::invalid_params(
                format!("unknown tool {other:?}"),
                None,
            )),
        }
    }
}

impl ServerHandler for VerityMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("df-middleware-verity", env!("CARGO_PKG_VERSION")))
            .with_instructions(
            "Tools call Verity's API (the company's platform). Each tool is one catalogued operation; \
             arguments are validated before any request.",
        )
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let who = self.principal(&context);
        let all: Vec<McpTool> = match self.inner.settings.mode {
            ToolsMode::Dynamic => Self::meta_tools(),
            _ => self
                .offered(&who)
                .into_iter()
                .map(|t| self.to_mcp(t))
                .collect(),
        };
        let cursor = request.as_ref().and_then(|r| r.cursor.as_deref());
        let (tools, next) = self.page(&all, cursor)?;
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = next;
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let principal = self.principal(&context);
        let args = request.arguments.unwrap_or_default();
        let result = match self.inner.settings.mode {
            ToolsMode::Dynamic => self.dynamic_call(&request.name, args, &principal).await?,
            _ => {
                self.call_catalog_tool(&request.name, args, &principal)
                    .await?
            }
        };
        Ok(result.into())
    }
}
