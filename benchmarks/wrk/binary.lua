-- Pre-built raw requests whose bodies may hold any byte (protobuf, snappy), each sent once: the argument
-- after `--` is the requests file; thread N reads "<file>.N", each request written as its length in decimal
-- digits, a newline, then its bytes. report.lua, beside this file, provides done(), which prints the figures.

local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "report.lua")

local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local requests = {}
local next_index = 0

function init(args)
  local file = assert(io.open(args[1] .. "." .. tid, "rb"))
  local data = file:read("*a")
  file:close()
  local pos = 1
  while pos <= #data do
    local newline = assert(data:find("\n", pos, true))
    local length = tonumber(data:sub(pos, newline - 1))
    requests[#requests + 1] = data:sub(newline + 1, newline + length)
    pos = newline + length + 1
  end
end

function request()
  next_index = next_index + 1
  if next_index > #requests then
    -- Out of distinct requests: a repeat would store nothing and look fast, so ask for what is not there
    -- (a 404, counted as a non-2xx answer, not as work done).
    return wrk.format("GET", "/out-of-prebuilt-requests")
  end
  return requests[next_index]
end
