-- Pre-built raw requests, each sent once (a SigV4 signature may be used once), exactly as Python built them.
-- The argument after `--` is the requests file: thread N reads "<file>.N", requests separated by NUL bytes.
-- report.lua, beside this file, provides done(), which prints the figures.

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
  for raw in string.gmatch(data, "([^%z]+)%z") do
    requests[#requests + 1] = raw
  end
end

function request()
  -- Past the end the requests repeat: the server refuses them as replays, and they count as errors.
  next_index = next_index % #requests + 1
  return requests[next_index]
end
