"""A FastAPI app served by thaw: JSON routes, path and query parameters, a
request body validated by pydantic, the worker's env, and a Jinja2 template."""

from pathlib import Path

import asgi
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from workers import WorkerEntrypoint

app = FastAPI()
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


class Item(BaseModel):
    name: str
    price: float
    description: str | None = None


@app.get("/")
async def root():
    return {"message": "Hello from FastAPI on thaw", "try": ["/items/7?q=x", "/env", "/hi/you"]}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item):
    return {"created": item.dict(), "price_with_tax": round(item.price * 1.2, 2)}


@app.get("/env")
async def show_env(request: Request):
    env = request.scope["env"]
    return {"greeting": env.GREETING}


@app.get("/hi/{name}", response_class=HTMLResponse)
async def hello_page(request: Request, name: str):
    context = {"request": request, "name": name, "greeting": request.scope["env"].GREETING}
    return templates.TemplateResponse("hello.html", context)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await asgi.fetch(app, request.js_object, self.env)
