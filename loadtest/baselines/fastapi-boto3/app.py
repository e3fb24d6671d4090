"""The seed document's activity tracker, as written there: FastAPI + boto3,
one synchronous put_item per request, sort key int(time.time()).

Baseline for docs/PERFORMANCE.md (issue 8). Only the endpoint is
configurable (DYNAMODB_ENDPOINT, so it can write into dynamo-sim); the
request handling is the seed's. Kept faithful on purpose, including its two
flaws: the blocking boto3 call inside an `async def` handler (it stalls the
event loop, so one process serves one request at a time), and the
one-second sort key (two events of one user in the same second overwrite
each other; `loadgen --verify` counts them as lost).
"""

import os
import time

import boto3
from fastapi import FastAPI

app = FastAPI()
dynamodb = boto3.resource(
    "dynamodb",
    region_name="us-east-1",
    endpoint_url=os.environ.get("DYNAMODB_ENDPOINT"),
    aws_access_key_id="baseline",
    aws_secret_access_key="baseline",
)
table = dynamodb.Table("UserActivity")


@app.post("/log_activity/")
async def log_activity(user_id: str, action: str):
    timestamp = int(time.time())
    table.put_item(
        Item={
            "user_id": user_id,
            "timestamp": timestamp,
            "action": action,
            "metadata": {"ip": "192.168.1.10"},
        }
    )
    return {"status": "success", "user_id": user_id, "action": action}
