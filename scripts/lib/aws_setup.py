"""Create the local queues in the emulator exactly as template.yaml declares them: FIFO,
with the template's VisibilityTimeout and a DLQ under its redrive policy.

Prints shell assignments of the queue URLs. Uses boto3 and PyYAML, which moto installs.
"""
import json
import os
import sys

import boto3
import yaml

# Environment variable → (queue name suffix, template resource).
QUEUES = {
    "WEBHOOK_EVENTS_QUEUE_URL": ("webhook-events", "WebhookEventsQueue"),
    "TEXTING_EVENTS_QUEUE_URL": ("texting-events", "TextingEventsQueue"),
    "BROADCAST_EVENTS_QUEUE_URL": ("broadcast-events", "BroadcastEventsQueue"),
}
TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "..", "template.yaml")


class Loader(yaml.SafeLoader):
    pass


# CloudFormation short tags (!Ref, !GetAtt, !Sub, ...) parse as plain values.
Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def template_queue(resource):
    """(VisibilityTimeout, maxReceiveCount) of a queue resource of the template."""
    with open(TEMPLATE) as f:
        props = yaml.load(f, Loader=Loader)["Resources"][resource]["Properties"]
    return int(props["VisibilityTimeout"]), int(props["RedrivePolicy"]["maxReceiveCount"])


def sqs():
    return boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_REGION", "us-east-1"))


def create_queues(prefix=""):
    client = sqs()
    for var, (name, resource) in QUEUES.items():
        visibility, max_receives = template_queue(resource)
        dlq = client.create_queue(QueueName=f"{prefix}{name}-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = client.create_queue(
            QueueName=f"{prefix}{name}.fifo",
            Attributes={
                "FifoQueue": "true",
                "VisibilityTimeout": str(visibility),
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}),
            },
        )["QueueUrl"]
        print(f"{var}='{url}'")


def create_secret(name):
    """A config secret like the deployed one; prints its ARN."""
    client = boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_REGION", "us-east-1"))
    settings = {"TEXTING_WEBHOOK_SECRET": "bench", "GHL_WORKFLOW_WEBHOOK_SECRET": "bench"}
    print(client.create_secret(Name=name, SecretString=json.dumps(settings))["ARN"])


def queue_urls(client, prefix=""):
    """Every queue (ListQueues answers at most 1000 a page), or those named `prefix…`."""
    args = {"MaxResults": 1000, **({"QueueNamePrefix": prefix} if prefix else {})}
    while True:
        page = client.list_queues(**args)
        yield from page.get("QueueUrls", [])
        if not page.get("NextToken"):
            return
        args["NextToken"] = page["NextToken"]


def print_depths(prefix=""):
    client = sqs()
    for url in queue_urls(client, prefix):
        attrs = client.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        print(f"{url}: {attrs['ApproximateNumberOfMessages']} visible, {attrs['ApproximateNumberOfMessagesNotVisible']} in flight")


if __name__ == "__main__":
    command = sys.argv[1:2]
    if command == ["queues"]:
        create_queues(sys.argv[2] if len(sys.argv) > 2 else "")
    elif command == ["secret"]:
        create_secret(sys.argv[2])
    elif command == ["depths"]:
        print_depths(sys.argv[2] if len(sys.argv) > 2 else "")
    else:
        sys.exit("usage: aws_setup.py queues [prefix] | secret NAME | depths [prefix]")
