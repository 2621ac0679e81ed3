"""Create the local queues (FIFO + DLQ, maxReceiveCount 10) in the emulator.

Prints shell assignments of the queue URLs. Uses boto3, which moto installs.
"""
import json
import os
import sys

import boto3

QUEUES = {"WEBHOOK_EVENTS_QUEUE_URL": "webhook-events", "TEXTING_EVENTS_QUEUE_URL": "texting-events"}


def sqs():
    return boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_REGION", "us-east-1"))


def create_queues(prefix=""):
    client = sqs()
    for var, name in QUEUES.items():
        dlq = client.create_queue(QueueName=f"{prefix}{name}-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = client.create_queue(
            QueueName=f"{prefix}{name}.fifo",
            Attributes={
                "FifoQueue": "true",
                "VisibilityTimeout": "60",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "10"}),
            },
        )["QueueUrl"]
        print(f"{var}='{url}'")


def create_secret(name):
    """A config secret like the deployed one; prints its ARN."""
    client = boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_REGION", "us-east-1"))
    settings = {"TEXTING_WEBHOOK_SECRET": "bench", "GHL_WORKFLOW_WEBHOOK_SECRET": "bench"}
    print(client.create_secret(Name=name, SecretString=json.dumps(settings))["ARN"])


def print_depths():
    client = sqs()
    for url in client.list_queues().get("QueueUrls", []):
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
        print_depths()
    else:
        sys.exit("usage: aws_setup.py queues [prefix] | secret NAME | depths")
