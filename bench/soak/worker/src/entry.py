# bench/soak: one of the soak's 200 workers (NAME is replaced per copy).
#   /       a small answer (warm requests, cold starts)
#   /boom   raises: the host answers 500 (handler errors at a known rate)
#   /upload the request body's length and SHA-256 (uploads)
import hashlib

from workers import Response, WorkerEntrypoint

WORKER = "NAME"


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = request.url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        if path == "boom":
            raise RuntimeError(f"soak: deliberate handler error in {WORKER}")
        if path == "upload":
            body = await request.bytes()
            return Response(f"{len(body)} {hashlib.sha256(body).hexdigest()}\n")
        return Response(f"ok {WORKER}\n")
