"""A tiny FastAPI app for wakegate's demo (config/examples/fastapi.yaml).

wakegate starts it with uvicorn on the port it picks and passes that port in $PORT too.
Run it by hand with:  cd config/examples/fastapi && PORT=8000 uvicorn app:app --port 8000
"""

import asyncio
import os

from fastapi import FastAPI, Query

app = FastAPI(title="wakegate demo")


def _instance_port():
    port = os.environ.get("PORT", "")
    return int(port) if port.isdigit() else None


@app.get("/")
async def root():
    return {"message": "hello from wakegate", "pid": os.getpid(), "instance_port": _instance_port()}


@app.get("/slow")
async def slow(ms: int = Query(100, ge=0, le=60_000)):
    """Answers after `ms` milliseconds: holds a request in flight, to watch the scaler add instances."""
    await asyncio.sleep(ms / 1000)
    return {"message": "slow hello from wakegate", "ms": ms, "pid": os.getpid(),
            "instance_port": _instance_port()}
