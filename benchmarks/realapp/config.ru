# The puma app (cluster mode, see the Procfile): a Rack endpoint that renders a JSON document, a
# CSV export or a text of the requested size, as Rails endpoints do: GET /work?kind=K&size=N&seed=S.
require "rack"
require_relative "work"

app = lambda do |env|
  request = Rack::Request.new(env)
  case request.path_info
  when "/health"
    [200, { "content-type" => "text/plain" }, ["ok\n"]]
  when "/work"
    body = Work.run(request.params["kind"], Integer(request.params["size"]), Integer(request.params["seed"]))
    [200, { "content-type" => "text/plain", "content-length" => body.bytesize.to_s }, [body]]
  else
    [404, { "content-type" => "text/plain" }, ["not found\n"]]
  end
end

run app
