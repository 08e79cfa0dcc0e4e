-- wrk script: syncs of an unchanged folder, each with the key of the
-- answer before, so every answer comes from one IMAP STATUS. A key moves
-- on with each answer, so each wrk thread drives one client over one
-- connection (run with as many threads as connections). Arguments after
-- "--": AUTHORIZATION then CLIENT:KEY, one per thread.

local threads = {}
local next_arg = 2

function setup(thread)
    thread:set("slot", next_arg)
    next_arg = next_arg + 1
    table.insert(threads, thread)
end

function init(args)
    auth = args[1]
    client, key = args[slot]:match("^(%w+):(%d+)$")
    ok, other, failed = 0, 0, 0
end

function request()
    return wrk.format("POST", nil, {
        ["Content-Type"] = "application/xml",
        ["Authorization"] = auth
    }, '<sync xmlns="urn:dme:1"><client>' .. client ..
       '</client><folder>INBOX</folder><type>push</type><key>' .. key ..
       '</key></sync>')
end

function response(status, headers, body)
    if status ~= 200 then
        failed = failed + 1
        return
    end
    local k = body:match('<sync [^>]*key="(%d+)"')
    if k then
        key = k
    end
    if body:match('source="status"') then
        ok = ok + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local o, x, f = 0, 0, 0
    for _, t in ipairs(threads) do
        o = o + t:get("ok")
        x = x + t:get("other")
        f = f + t:get("failed")
    end
    io.write(string.format("STATUS-CHECK status=%d other=%d failed=%d\n",
                           o, x, f))
end
