-- bench/soak: one kind of traffic for one wrk process (run.sh starts one wrk
-- per kind, so that each answer's status can be judged against what was asked):
--
--   wrk ... -s soak.lua URL -- MODE WORKERS HOT DELAY_MS [BODY_FILE BODY_SHA256]
--
--   warm    GET /wNNN/ on the hot set (w001..wHOT), no delay: the saturating load
--   cold    GET /wNNN/ on the other workers, each visited once per shuffled round,
--           DELAY_MS between requests on a connection: a worker is idle longer than
--           the host's --idle-timeout between two visits, so each visit is a cold start
--   boom    GET /wNNN/boom on the hot set: the handler raises (500 expected)
--   upload  POST BODY_FILE to /wNNN/upload on the hot set: the answer is
--           "LENGTH SHA256" of what the worker received
--
-- done() prints one line "soak MODE key=value ..." that run.sh parses: requests,
-- rps, latency percentiles (ms), statuses (2xx, 500, 502, other), answers whose
-- body was wrong (bad), 502s whose body was not the host's "instance exited" text
-- (bad502) and wrk's socket errors.

local nworkers, hot, delay_ms, body, body_sha
local reqs = {}
local order, pos = {}, 0

local function wname(i) return string.format("w%03d", i) end

function init(args)
	mode = args[1] -- global: done() reads it from a thread
	nworkers = tonumber(args[2])
	hot = tonumber(args[3])
	delay_ms = tonumber(args[4] or "0")
	math.randomseed(os.time() + math.floor(os.clock() * 1e6) + (tonumber(args[7] or "0")))
	if mode == "upload" then
		local f = assert(io.open(args[5], "rb"))
		body = f:read("*a")
		f:close()
		body_sha = args[6]
	end
	if mode == "cold" then
		for i = hot + 1, nworkers do
			reqs[#reqs + 1] = wrk.format("GET", "/" .. wname(i) .. "/")
		end
		-- A shuffled round, from a random place: connections and wrk runs do
		-- not walk the workers in step.
		for i = 1, #reqs do order[i] = i end
		for i = #order, 2, -1 do
			local j = math.random(i)
			order[i], order[j] = order[j], order[i]
		end
		pos = math.random(#order)
	else
		for i = 1, hot do
			local w = "/" .. wname(i) .. "/"
			if mode == "warm" then
				reqs[i] = wrk.format("GET", w)
			elseif mode == "boom" then
				reqs[i] = wrk.format("GET", w .. "boom")
			elseif mode == "upload" then
				reqs[i] = wrk.format("POST", w .. "upload",
					{["Content-Type"] = "application/octet-stream"}, body)
			end
		end
	end
	if delay_ms > 0 then
		-- Defined only when asked (wrk checks after init): without it wrk
		-- sends the next request at once instead of through a timer.
		function delay() return delay_ms end
	end
	s2xx, s500, s502, sother, bad, bad502 = 0, 0, 0, 0, 0, 0
	other_codes = ""
end

function request()
	if mode == "cold" then
		pos = pos % #order + 1
		return reqs[order[pos]]
	end
	return reqs[math.random(#reqs)]
end

function response(status, headers, rbody)
	if status >= 200 and status < 300 then
		s2xx = s2xx + 1
		if mode == "boom" then
			bad = bad + 1
		elseif mode == "upload" then
			if rbody ~= string.format("%d %s\n", #body, body_sha) then bad = bad + 1 end
		elseif rbody:sub(1, 4) ~= "ok w" then
			bad = bad + 1
		end
	elseif status == 500 then
		s500 = s500 + 1
	elseif status == 502 then
		s502 = s502 + 1
		if not rbody:find("exited", 1, true) then bad502 = bad502 + 1 end
	else
		sother = sother + 1
		if #other_codes < 200 then other_codes = other_codes .. status .. "," end
	end
end

local threads = {}
function setup(thread)
	threads[#threads + 1] = thread
end

function done(summary, latency, requests)
	local t = {s2xx = 0, s500 = 0, s502 = 0, sother = 0, bad = 0, bad502 = 0}
	local codes = ""
	local mode = threads[1]:get("mode")
	for _, th in ipairs(threads) do
		for k in pairs(t) do t[k] = t[k] + (th:get(k) or 0) end
		codes = codes .. (th:get("other_codes") or "")
	end
	local e = summary.errors
	local secs = summary.duration / 1e6
	io.write(string.format(
		"soak %s requests=%d rps=%.1f p50=%.2f p90=%.2f p99=%.2f max=%.2f " ..
		"s2xx=%d s500=%d s502=%d sother=%d bad=%d bad502=%d " ..
		"connect=%d read=%d write=%d timeout=%d codes=%s\n",
		mode, summary.requests, summary.requests / secs,
		latency:percentile(50) / 1000, latency:percentile(90) / 1000,
		latency:percentile(99) / 1000, latency.max / 1000,
		t.s2xx, t.s500, t.s502, t.sother, t.bad, t.bad502,
		e.connect, e.read, e.write, e.timeout, codes == "" and "-" or codes))
end
