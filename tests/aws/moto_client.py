"""What tests/aws.rs asks of moto besides what Lookout sends: creating the queues and
topics it sends to, and reading back what arrived. boto3 (installed with moto) against
the emulator at MOTO_URL; prints one JSON document.

    moto_client.py create-queue NAME            -> {"queue_url": ...}
    moto_client.py create-topic NAME QUEUE_URL  -> {"topic_arn": ...} (QUEUE_URL subscribed, raw)
    moto_client.py receive QUEUE_URL            -> {"messages": [{"body", "attributes"}]}
    moto_client.py create-stream NAME           -> {"stream": NAME} (one shard)
    moto_client.py read-stream NAME             -> {"records": [{"data", "partition_key"}]}
    moto_client.py create-bus NAME QUEUE_URL    -> {"bus": NAME} (a rule on it for source
                                                   `sprintly` forwards to QUEUE_URL)
    moto_client.py create-bucket NAME           -> {"bucket": NAME}
    moto_client.py objects BUCKET               -> {"objects": [{"key", "body", "type", "metadata"}]}
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


def create_stream(name):
    client("kinesis").create_stream(StreamName=name, ShardCount=1)
    return {"stream": name}


def read_stream(name):
    kinesis = client("kinesis")
    shards = kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"]
    records = []
    for shard in shards:
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        got = kinesis.get_records(ShardIterator=iterator, Limit=100)["Records"]
        records += [
            {"data": r["Data"].decode(), "partition_key": r["PartitionKey"]} for r in got
        ]
    return {"records": records}


def create_bus(name, queue_url):
    events, sqs = client("events"), client("sqs")
    if name != "default":
        events.create_event_bus(Name=name)
    rule = f"{name}-to-queue"
    events.put_rule(
        Name=rule, EventBusName=name, EventPattern=json.dumps({"source": ["sprintly"]})
    )
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    events.put_targets(
        Rule=rule,
        EventBusName=name,
        Targets=[{"Id": "queue", "Arn": queue_arn["Attributes"]["QueueArn"]}],
    )
    return {"bus": name}


def create_bucket(name):
    client("s3").create_bucket(Bucket=name)
    return {"bucket": name}


def objects(bucket):
    s3 = client("s3")
    found = []
    for summary in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        got = s3.get_object(Bucket=bucket, Key=summary["Key"])
        found.append(
            {
                "key": summary["Key"],
                "body": got["Body"].read().decode(),
                "type": got["ContentType"],
                "metadata": got["Metadata"],
            }
        )
    return {"objects": found}


COMMANDS = {
    "create-queue": create_queue,
    "create-topic": create_topic,
    "receive": receive,
    "create-stream": create_stream,
    "read-stream": read_stream,
    "create-bus": create_bus,
    "create-bucket": create_bucket,
    "objects": objects,
}

if __name__ == "__main__":
    print(json.dumps(COMMANDS[sys.argv[1]](*sys.argv[2:])))
