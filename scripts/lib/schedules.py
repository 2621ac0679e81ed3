"""Print the EventBridge schedules of template.yaml as `binary=seconds,...` for the local
bridge: every function event of Type Schedule or ScheduleV2 with a rate() expression."""
import re
import sys

import yaml


class Loader(yaml.SafeLoader):
    pass


# CloudFormation short tags (!Ref, !GetAtt, !Sub, ...) parse as plain values.
Loader.add_multi_constructor("!", lambda loader, suffix, node: None)

UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def schedules(path):
    with open(path) as f:
        template = yaml.load(f, Loader=Loader)
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") not in ("Schedule", "ScheduleV2"):
                continue
            expression = (event.get("Properties") or {}).get("Schedule") or (event.get("Properties") or {}).get("ScheduleExpression") or ""
            match = re.fullmatch(r"rate\((\d+)\s+(\w+)\)", expression.strip())
            if binary and match and match.group(2) in UNITS:
                yield f"{binary}={int(match.group(1)) * UNITS[match.group(2)]}"


if __name__ == "__main__":
    print(",".join(schedules(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")))
