#include "backend/common/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

namespace {

// Connects to 127.0.0.1:port, sends `request`, then reads until the server closes the
// connection (or 5 s pass). Returns everything received; "" if the connect failed.
std::string httpExchange(uint16_t port, const std::string& request, bool halfClose = false) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return "";
  }
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early on garbage; keep what it said
    sent += n;
  }
  if (halfClose) shutdown(fd, SHUT_WR);
  std::string reply;
  char buffer[4096];
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    reply.append(buffer, n);
  }
  close(fd);
  return reply;
}

std::string get(uint16_t port, const std::string& path) {
  return httpExchange(port, "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
}

}  // namespace

TEST_CASE("http server answers /metrics, /health and 404 on a loopback port") {
  dfs::Metrics registry;
  registry.counter("dfs_rpc_requests_total", "RPC requests.", {{"op", "lookup"}}).inc(42);
  dfs::HttpServer server(registry);
  REQUIRE(server.start("127.0.0.1:0").ok());
  REQUIRE(server.running());
  uint16_t port = server.port();
  REQUIRE(port != 0);

  std::string metricsReply = get(port, "/metrics");
  CHECK(metricsReply.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(metricsReply.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  CHECK(metricsReply.find("\r\n\r\n# HELP dfs_rpc_requests_total RPC requests.\n") !=
        std::string::npos);
  CHECK(metricsReply.find("dfs_rpc_requests_total{op=\"lookup\"} 42\n") != std::string::npos);

  CHECK(get(port, "/metrics?x=1").rfind("HTTP/1.1 200", 0) == 0);
  std::string health = get(port, "/health");
  CHECK(health.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(health.find("\r\n\r\nok\n") != std::string::npos);
  CHECK(get(port, "/nope").rfind("HTTP/1.1 404", 0) == 0);
  CHECK(httpExchange(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                       "Connection: close\r\n\r\n")
            .rfind("HTTP/1.1 405", 0) == 0);

  // Keep-alive: two requests on one connection, both answered.
  std::string twice = httpExchange(port,
                               "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  size_t first = twice.find("HTTP/1.1 200");
  REQUIRE(first != std::string::npos);
  CHECK(twice.find("HTTP/1.1 200", first + 1) != std::string::npos);

  server.stop();
  CHECK_FALSE(server.running());
  CHECK(get(port, "/health").empty());
}

TEST_CASE("http server survives garbage, oversized and truncated requests") {
  dfs::HttpServer server;
  REQUIRE(server.start("127.0.0.1:0").ok());
  uint16_t port = server.port();

  CHECK(httpExchange(port, "\x16\x03\x01\x02\x00garbage\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
  CHECK(httpExchange(port, "GET\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
  std::string hugeHeader = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(64 * 1024, 'a') +
                           "\r\n\r\n";
  std::string reply = httpExchange(port, hugeHeader);
  CHECK((reply.empty() || reply.rfind("HTTP/1.1 4", 0) == 0));
  std::string hugeBody = "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n" +
                         std::string(100 * 1024, 'b');
  reply = httpExchange(port, hugeBody);
  CHECK((reply.empty() || reply.rfind("HTTP/1.1 4", 0) == 0));
  // A request cut off half-way: the peer closes its side; 400 or silence are both fine.
  reply = httpExchange(port, "GET /metr", true);
  CHECK((reply.empty() || reply.rfind("HTTP/1.1 400", 0) == 0));
  std::string binary;
  for (int i = 0; i < 4096; ++i) binary += static_cast<char>((i * 7919) & 0xff);
  (void)httpExchange(port, binary, true);

  CHECK(get(port, "/health").rfind("HTTP/1.1 200", 0) == 0);
}

TEST_CASE("http server start fails clearly on a taken port or a bad address") {
  dfs::HttpServer first;
  REQUIRE(first.start("127.0.0.1:0").ok());
  std::string taken = "127.0.0.1:" + std::to_string(first.port());
  dfs::HttpServer second;
  dfs::Status status = second.start(taken);
  CHECK_FALSE(status.ok());
  CHECK(status.message.find(taken) != std::string::npos);
  CHECK(status.message.find("in use") != std::string::npos);
  CHECK_FALSE(second.running());

  CHECK_FALSE(second.start("no-port-here").ok());
  CHECK_FALSE(second.start("127.0.0.1:99999").ok());
  CHECK_FALSE(second.start("127.0.0.1:").ok());
  CHECK_FALSE(first.start("127.0.0.1:0").ok());  // already running

  // A stopped server can start again, and custom routes are served.
  first.stop();
  first.addRoute("/ready", [] { return dfs::HttpResponse{200, "text/plain", "ready\n"}; });
  REQUIRE(first.start("localhost:0").ok());
  CHECK(get(first.port(), "/ready").find("\r\n\r\nready\n") != std::string::npos);
}
