-- PUT a 100-byte body to the wrk URL.
wrk.method = "PUT"
wrk.body = string.rep("x", 100)
wrk.headers["Content-Type"] = "application/octet-stream"
