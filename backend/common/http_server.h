// A minimal HTTP/1.1 server for operational endpoints: `GET /metrics` (Prometheus text
// format from a Metrics registry) and `GET /health` ("ok"). It runs on its own thread with
// its own Boost.Asio event loop, so a slow scraper never delays RPC or FUSE work, and the
// daemons' KJ loops know nothing about it.
//
// Robustness: requests are limited to 8 KiB of headers and 4 KiB of body; a connection that
// sends garbage gets 400 and is closed; an idle or slow connection is closed after 10 s.
// None of this affects other connections or the process.
//
// Thread safety: start(), stop(), addRoute() and the destructor must be called from one
// owning thread (normally main); handlers run on the server thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "backend/common/metrics.h"
#include "backend/common/status.h"

namespace dfs {

struct HttpResponse {
  int status = 200;
  std::string contentType = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  // Serves /metrics from `registry` (which must outlive the server) and /health.
  explicit HttpServer(Metrics& registry = metrics());
  ~HttpServer();  // stops the server
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Adds or replaces the handler for an exact path (GET only; other
  // methods get 405).
  // REQUIRES: not running (call before start()).
  void addRoute(const std::string& path, std::function<HttpResponse()> handler);

  // Binds "host:port" ("127.0.0.1:9100", "[::1]:9100", "0.0.0.0:0" for any free port) and
  // starts the server thread. Fails with a message naming the address if it cannot be
  // parsed or bound (e.g. the port is taken); the server is then not running.
  Status start(const std::string& hostPort);

  // Closes the listener and every connection and joins the thread. Idempotent.
  void stop();

  bool running() const;
  // The bound port (useful after binding port 0). REQUIRES: running().
  uint16_t port() const;

 private:
  struct Running;
  Metrics& registry_;
  // Read by the server thread; written only while it is not running.
  std::map<std::string, std::function<HttpResponse()>> routes_;
  std::unique_ptr<Running> running_;
};

}  // namespace dfs
