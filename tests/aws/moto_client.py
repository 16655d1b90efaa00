"""What tests/aws.rs asks of moto besides what Lookout sends: creating the queues and
topics it sends to, and reading back what arrived. boto3 (installed with moto) against
the emulator at MOTO_URL; prints one JSON document.

    moto_client.py create-queue NAME            -> {"queue_url": ...}
    moto_client.py create-topic NAME QUEUE_URL  -> {"topic_arn": ...} (QUEUE_URL subscribed, raw)
    moto_client.py receive QUEUE_URL            -> {"messages": [{"body", "attributes"}]}
"""

import json
import os
import sys

import boto3

REGION = "us-east-1"


def client(service):
    return boto3.client(
        service,
        endpoint_url=os.environ["MOTO_URL"],
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def create_queue(name):
    attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
    url = client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return {"queue_url": url}


def create_topic(name, queue_url):
    sns, sqs = client("sns"), client("sqs")
    arn = sns.create_topic(Name=name)["TopicArn"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=arn,
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    return {"topic_arn": arn}


def receive(queue_url):
    got = client("sqs").receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        AttributeNames=["All"],
        WaitTimeSeconds=1,
    )
    messages = [
        {
            "body": m["Body"],
            "attributes": {
                name: value.get("StringValue")
                for name, value in m.get("MessageAttributes", {}).items()
            },
            "system": m.get("Attributes", {}),
        }
        for m in got.get("Messages", [])
    ]
    return {"messages": messages}


COMMANDS = {"create-queue": create_queue, "create-topic": create_topic, "receive": receive}

if __name__ == "__main__":
    print(json.dumps(COMMANDS[sys.argv[1]](*sys.argv[2:])))
