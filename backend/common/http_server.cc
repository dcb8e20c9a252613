#include "backend/common/http_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>
#include <thread>

namespace dfs {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

constexpr size_t kHeaderLimit = 8 * 1024;
constexpr size_t kBodyLimit = 4 * 1024;
constexpr auto kIdleTimeout = std::chrono::seconds(10);
// Scrapers open one or two connections; more than this is a misbehaving peer.
constexpr int kMaxConnections = 64;

using Routes = std::map<std::string, std::function<HttpResponse()>>;

HttpResponse routeRequest(const Routes& routes, const http::request<http::string_body>& request) {
  if (request.method() != http::verb::get) return {405, "text/plain", "only GET is supported\n"};
  beast::string_view target = request.target();
  std::string path(target.substr(0, target.find('?')));
  auto it = routes.find(path);
  if (it == routes.end()) return {404, "text/plain", "not found\n"};
  try {
    return it->second();
  } catch (const std::exception& e) {
    spdlog::error("http handler for {} failed: {}", path, e.what());
    return {500, "text/plain", "internal error\n"};
  }
}

// One client connection: reads requests and writes responses until the peer closes, sends
// garbage, or stays idle past kIdleTimeout. Lives on the server thread only.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const Routes& routes, int& activeConnections)
      : stream_(std::move(socket)),
        buffer_(kHeaderLimit + kBodyLimit),
        routes_(routes),
        activeConnections_(activeConnections) {
    ++activeConnections_;
  }
  ~Session() { --activeConnections_; }

  void readRequest() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(kBodyLimit);
    stream_.expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->onRead(ec); });
  }

 private:
  void onRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return close();
    if (ec) {
      // A protocol violation deserves an answer; a timeout or reset does not.
      if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
        HttpResponse bad{400, "text/plain", "bad request\n"};
        return respond(bad, 11, false);
      }
      return;
    }
    const auto& request = parser_->get();
    respond(routeRequest(routes_, request), request.version(), request.keep_alive());
  }

  void respond(const HttpResponse& reply, unsigned version, bool keepAlive) {
    response_ = {};
    response_.version(version);
    response_.result(static_cast<http::status>(reply.status));
    response_.set(http::field::server, "dfs");
    response_.set(http::field::content_type, reply.contentType);
    response_.keep_alive(keepAlive);
    response_.body() = reply.body;
    response_.prepare_payload();
    stream_.expires_after(kIdleTimeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this(), keepAlive](beast::error_code ec, size_t) {
                        if (ec) return;
                        if (keepAlive) return self->readRequest();
                        self->close();
                      });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  const Routes& routes_;
  int& activeConnections_;
};

// Splits "host:port", "[v6]:port" or ":port" (all interfaces).
Status parseHostPort(const std::string& text, std::string& host, uint16_t& port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    return Status::error(Code::INVALID, "metrics address '" + text + "' is not host:port");
  }
  host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";
  std::string portText = text.substr(colon + 1);
  if (portText.empty() || portText.size() > 5 ||
      portText.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(portText) > 65535) {
    return Status::error(Code::INVALID, "metrics address '" + text + "' has a bad port");
  }
  port = static_cast<uint16_t>(std::stoul(portText));
  return {};
}

}  // namespace

// Declaration order matters: `activeConnections` must outlive `io` because destroying
// `io` destroys pending handlers and with them the sessions that decrement it.
struct HttpServer::Running {
  int activeConnections = 0;
  uint16_t port = 0;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer retryTimer{io};
  std::thread thread;

  void accept(const Routes& routes) {
    acceptor.async_accept([this, &routes](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        // Usually EMFILE: back off instead of spinning on the failing accept.
        spdlog::warn("metrics endpoint: accept failed: {}", ec.message());
        retryTimer.expires_after(std::chrono::milliseconds(100));
        retryTimer.async_wait([this, &routes](beast::error_code waitEc) {
          if (!waitEc) accept(routes);
        });
        return;
      }
      if (activeConnections < kMaxConnections) {
        std::make_shared<Session>(std::move(socket), routes, activeConnections)->readRequest();
      }
      accept(routes);
    });
  }
};

HttpServer::HttpServer(Metrics& registry) : registry_(registry) {
  routes_["/metrics"] = [this] {
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8",
                        registry_.renderPrometheus()};
  };
  routes_["/health"] = [] { return HttpResponse{200, "text/plain", "ok\n"}; };
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::addRoute(const std::string& path, std::function<HttpResponse()> handler) {
  routes_[path] = std::move(handler);
}

Status HttpServer::start(const std::string& hostPort) {
  if (running_) return Status::error(Code::BUSY, "metrics endpoint already running");
  std::string host;
  uint16_t port = 0;
  Status parsed = parseHostPort(hostPort, host, port);
  if (!parsed.ok()) return parsed;

  auto running = std::make_unique<Running>();
  beast::error_code ec;
  tcp::endpoint endpoint;
  auto address = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, port);
  } else {
    tcp::resolver resolver(running->io);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) {
      return Status::error(Code::INVALID, "cannot resolve metrics host '" + host +
                                              "': " + (ec ? ec.message() : "no address"));
    }
    endpoint = results.begin()->endpoint();
  }
  auto& acceptor = running->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::error(Code::IO,
                         "cannot serve /metrics on " + hostPort + ": " + ec.message());
  }
  running->port = acceptor.local_endpoint().port();
  running->accept(routes_);
  Running* raw = running.get();
  running->thread = std::thread([raw] {
    for (;;) {
      try {
        raw->io.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("metrics endpoint: {}", e.what());
      }
    }
  });
  running_ = std::move(running);
  return {};
}

void HttpServer::stop() {
  if (!running_) return;
  running_->io.stop();
  running_->thread.join();
  running_.reset();
}

bool HttpServer::running() const { return running_ != nullptr; }

uint16_t HttpServer::port() const { return running_->port; }

}  // namespace dfs
