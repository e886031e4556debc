"""The cold-start benchmark's worker: FastAPI + pydantic + httpx, built at import."""
import asyncio

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from workers import WorkerEntrypoint

import asgi

app = FastAPI()
client_timeout = httpx.Timeout(5.0)


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.get("/")
async def root():
    return {"ok": True, "httpx": httpx.__version__}


@app.post("/items")
async def create(item: Item):
    return {"name": item.name, "total": item.price * 1.2, "tags": item.tags}


@app.get("/sleep")
async def sleep(ms: int = 500):
    await asyncio.sleep(ms / 1000)
    return {"slept": ms}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await asgi.fetch(app, request.js_object, self.env)
