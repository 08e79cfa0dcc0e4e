-- wrk script: the same sync request again and again. The key sent is the
-- one before the client's current key, so every answer is the stored
-- answer replayed byte for byte (the lost-answer path: one database read,
-- no IMAP). Arguments after "--": CLIENT PREVIOUS_KEY AUTHORIZATION.

function init(args)
    local client, key, auth = args[1], args[2], args[3]
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/xml"
    wrk.headers["Authorization"] = auth
    wrk.body = '<sync xmlns="urn:dme:1"><client>' .. client ..
               '</client><folder>INBOX</folder><type>push</type><key>' ..
               key .. '</key></sync>'
end
