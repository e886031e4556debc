from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if "/api/" in request.url:
            return Response.json({"greeting": self.env.GREETING, "keyed": bool(self.env.API_KEY)})
        return await self.env.ASSETS.fetch(request)

    async def scheduled(self, controller, env, ctx):
        print(f"refreshing ({controller.cron})")
