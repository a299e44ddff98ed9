-- wrk script for bench/keys.sh: POSTs one key-release request body over and
-- over, checks every answer, and prints one machine-readable summary line.
--
-- Environment:
--   KEYS_BODY  file with the JSON request body (required)
--   KEYS_RATE  0 (default): closed loop, each connection sends its next
--              request as soon as the answer is in; N > 0: a fixed rate of N
--              requests per second for the whole run (per wrk thread N /
--              KEYS_WRK_THREADS), on a fixed schedule like wrk2's: a request
--              whose slot has passed goes out at once. Latency is measured
--              from the actual send (wrk2 also counts the time a late request
--              waited for its slot; with enough idle connections there is none).
--   KEYS_WRK_THREADS  wrk's -t (default 1), to split KEYS_RATE
--
-- Every answer must be 200 with a wrapped_secret in the body; anything else is
-- counted as bad (and the first one kept for the error message).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } keys_bench_timespec;
int clock_gettime(int clk_id, keys_bench_timespec *ts);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("keys_bench_timespec")
local function now_ms()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local body_path = os.getenv("KEYS_BODY")
if not body_path then
    error("KEYS_BODY is not set")
end
local f = assert(io.open(body_path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

local rate = tonumber(os.getenv("KEYS_RATE") or "0") or 0
local wrk_threads = tonumber(os.getenv("KEYS_WRK_THREADS") or "1") or 1

-- Per wrk thread (each has its own Lua state); read by done() with get().
ok_count = 0
bad_count = 0
first_bad = ""

local threads = {}
function setup(thread)
    table.insert(threads, thread)
end

local interval_ms = nil
local next_ms = nil
if rate > 0 then
    interval_ms = 1000 * wrk_threads / rate
    -- wrk only calls delay() when the script defines it.
    function delay()
        local now = now_ms()
        if next_ms == nil then
            next_ms = now
        end
        local slot = next_ms
        next_ms = next_ms + interval_ms
        local d = slot - now
        if d < 0 then
            return 0
        end
        return d
    end
end

function response(status, headers, body)
    if status == 200 and body:find('"wrapped_secret"', 1, true) then
        ok_count = ok_count + 1
    else
        bad_count = bad_count + 1
        if first_bad == "" then
            first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 200)
        end
    end
end

function done(summary, latency, requests)
    local ok, bad, why = 0, 0, ""
    for _, t in ipairs(threads) do
        ok = ok + t:get("ok_count")
        bad = bad + t:get("bad_count")
        local fb = t:get("first_bad")
        if why == "" and fb ~= "" then
            why = fb
        end
    end
    local e = summary.errors
    io.write(string.format(
        "keys-lua: requests=%d duration_us=%d ok=%d bad=%d connect=%d read=%d write=%d status=%d timeout=%d " ..
        "mean_us=%.0f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d\n",
        summary.requests, summary.duration, ok, bad, e.connect, e.read, e.write, e.status, e.timeout,
        latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency:percentile(99.9), latency.max))
    if why ~= "" then
        io.write("keys-lua: first bad answer: " .. string.gsub(why, "[\r\n]", " ") .. "\n")
    end
end
