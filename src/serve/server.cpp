#include "serve/server.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <optional>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "serve/metrics.h"

namespace attend::serve {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::string note;  // for the log line: model, inputs, tokens
  bool close = false;
  int retry_after = 0;  // seconds; 0 = no header
  std::string allow;    // for 405
};

Response error(int status, const std::string& message) { return {status, error_body(message)}; }

// The routes /metrics counts by; anything else is "other" (bounded label values).
std::string route_of(beast::string_view full) {
  const std::string_view target = std::string_view(full.data(), full.size()).substr(0, full.find('?'));
  for (const char* r : {"/health", "/metrics", "/v1/models", "/v1/models/reload", "/v1/translate", "/v1/align"})
    if (target == r) return r;
  return "other";
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// What a client sent, fit for a log line: control bytes (terminal escapes) become '?'.
std::string printable(beast::string_view text) {
  std::string out(text.data(), text.size());
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

class Session;

// A translation request waiting in the batcher.
struct Pending {
  std::shared_ptr<Session> session;
  std::shared_ptr<const LoadedModel> model;
  TranslateRequest request;
  int64_t source_tokens = 0;
};

}  // namespace

struct Server::Impl {
  Impl(ModelSet& m, ServerOptions o);
  void listen();
  void accept();
  void watch_signals();
  void begin_drain();
  void poll_drain();
  Response dispatch(const std::shared_ptr<Session>& s, const http::request<http::string_body>& req);
  Response submit(const std::shared_ptr<Session>& s, const std::string& body, bool align);
  Response reload(const std::shared_ptr<Session>& s, const std::string& body);
  void run_batch(std::vector<std::shared_ptr<Pending>>& batch);
  void post_reply(const std::shared_ptr<Session>& s, Response r);
  nlohmann::json models_json() const;

  ModelSet& models;
  const ServerOptions options;
  Metrics metrics;
  std::atomic<size_t> connections{0}, in_flight{0};
  std::atomic<bool> draining{false};
  bool abandoned = false;
  Clock::time_point drain_deadline;
  std::atomic<bool> reloading{false};
  std::thread reload_thread;
  // Destroyed before the above (members go in reverse): the I/O objects, then the batcher.
  Batcher<std::shared_ptr<Pending>> batcher;
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  net::signal_set signals{ioc};
  net::steady_timer timer{ioc};
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Server::Impl& server) : stream_(std::move(socket)), server_(server) {
    ++server_.connections;
    beast::error_code ec;
    const tcp::endpoint peer = stream_.socket().remote_endpoint(ec);
    peer_ = ec ? "?" : peer.address().to_string();
  }
  ~Session() { --server_.connections; }

  void start() { read_header(); }

  // On the I/O thread: answers the request just read, then reads the next (keep-alive) or closes.
  void reply(Response r) {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), version_);
    res->set(http::field::server, "attend");
    res->set(http::field::content_type, r.content_type);
    if (r.retry_after > 0) res->set(http::field::retry_after, std::to_string(r.retry_after));
    if (!r.allow.empty()) res->set(http::field::allow, r.allow);
    res->keep_alive(keep_alive_ && !r.close && !server_.draining);
    res->body() = std::move(r.body);
    res->prepare_payload();
    const double seconds = std::chrono::duration<double>(Clock::now() - arrived_).count();
    server_.metrics.response(route_, r.status, seconds);
    log(r.status, r.note, seconds);
    stream_.expires_after(server_.options.write_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      self->written(ec, res->keep_alive());
    });
  }

 private:
  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_.options.max_header_bytes));
    parser_->body_limit(server_.options.max_body_bytes);
    stream_.expires_after(server_.options.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->header_read(ec); });
  }

  // curl and others wait for "100 Continue" before sending a body they announced so.
  void header_read(beast::error_code ec) {
    if (ec) return read_failed(ec);
    if (parser_->is_done()) return handle();
    if (parser_->get()[http::field::expect] == "100-continue") {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code e, size_t) {
        if (e) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->read_failed(ec);
      self->handle();
    });
  }

  // What a broken request gets: a status when the client can still read one, else nothing.
  void read_failed(beast::error_code ec) {
    const bool idle = buffer_.size() == 0 && !parser_->got_some();  // between keep-alive requests
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
        ec == http::error::partial_message || ec == net::error::operation_aborted ||
        (ec == beast::error::timeout && idle))
      return close();
    begin_request();
    keep_alive_ = false;
    if (ec == beast::error::timeout) {  // Beast has closed the socket: counted and logged as 408
      server_.metrics.response(route_, 408, std::chrono::duration<double>(Clock::now() - arrived_).count());
      log(408, "(closed: the request did not arrive within the read timeout)", 0.0);
      --server_.in_flight;
      return close();
    }
    if (ec == http::error::body_limit)
      return reply({413, error_body("the request body is larger than " +
                                    std::to_string(server_.options.max_body_bytes) + " bytes")});
    if (ec == http::error::header_limit)
      return reply({431, error_body("the request header is larger than " +
                                    std::to_string(server_.options.max_header_bytes) + " bytes")});
    reply({400, error_body("malformed HTTP request: " + ec.message())});
  }

  void begin_request() {
    ++server_.in_flight;
    arrived_ = Clock::now();
    if (parser_ && parser_->is_header_done()) {
      const auto& req = parser_->get();
      version_ = req.version() == 10 ? 10 : 11;
      method_ = std::string(req.method_string());
      target_ = printable(req.target().substr(0, 200));
      route_ = route_of(req.target());
    }
  }

  void handle() {
    begin_request();
    keep_alive_ = parser_->get().keep_alive();
    Response r;
    try {
      r = server_.dispatch(shared_from_this(), parser_->get());
    } catch (const ApiError& e) {
      r = error(e.status, e.what());
    } catch (const std::bad_alloc&) {
      r = error(503, "out of memory");
    } catch (const std::exception& e) {
      r = error(500, e.what());
    }
    if (r.status != 0) reply(std::move(r));  // 0: answered later (batcher, reload)
  }

  void written(beast::error_code ec, bool keep_alive) {
    --server_.in_flight;
    route_ = "other";
    method_ = target_ = "-";
    if (ec || !keep_alive) return close();
    read_header();
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  void log(int status, const std::string& note, double seconds) const {
    if (!server_.options.log_requests) return;
    std::fprintf(stderr, "%s %s %s %s %d %.1fms%s%s\n", utc_now().c_str(), peer_.c_str(), method_.c_str(),
                 target_.c_str(), status, 1000 * seconds, note.empty() ? "" : " ", note.c_str());
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Server::Impl& server_;
  std::string peer_, method_ = "-", target_ = "-", route_ = "other";
  unsigned version_ = 11;
  bool keep_alive_ = true;
  Clock::time_point arrived_ = Clock::now();
};

}  // namespace

void ServerOptions::validate() const {
  batcher.validate();
  auto check = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("serve: " + what);
  };
  check(port >= 0 && port <= 65535, "--port must be 0..65535, got " + std::to_string(port));
  check(max_body_bytes >= 64 && max_body_bytes <= (size_t(1) << 30),
        "--max-body-bytes must be 64..2^30, got " + std::to_string(max_body_bytes));
  check(max_header_bytes >= 1024 && max_header_bytes <= (1 << 20),
        "--max-header-bytes must be 1024..2^20, got " + std::to_string(max_header_bytes));
  check(max_connections >= 1 && max_connections <= 100000,
        "--max-connections must be 1..100000, got " + std::to_string(max_connections));
  for (auto [t, name] : {std::pair{read_timeout, "--read-timeout-ms"},
                         {write_timeout, "--write-timeout-ms"},
                         {drain_timeout, "--drain-timeout-ms"}})
    check(t.count() >= 1 && t.count() <= 3600000,
          std::string(name) + " must be 1..3600000, got " + std::to_string(t.count()));
  check(limits.max_inputs >= 1 && limits.max_inputs <= 100000,
        "--max-inputs must be 1..100000, got " + std::to_string(limits.max_inputs));
  check(limits.max_input_bytes >= 1 && limits.max_input_bytes <= (1 << 20),
        "--max-input-bytes must be 1..2^20, got " + std::to_string(limits.max_input_bytes));
  check(limits.max_beam >= 1 && limits.max_beam <= 64,
        "--max-beam must be 1..64, got " + std::to_string(limits.max_beam));
}

Server::Impl::Impl(ModelSet& m, ServerOptions o)
    : models(m),
      options(std::move(o)),
      batcher(options.batcher, [this](std::vector<std::shared_ptr<Pending>>& b) { run_batch(b); }) {}

void Server::Impl::listen() {
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(options.host, ec);
  if (ec) throw std::invalid_argument("serve: --host must be an IP address, got '" + options.host + "'");
  const tcp::endpoint at(address, static_cast<unsigned short>(options.port));
  const std::string where = options.host + ":" + std::to_string(options.port);
  acceptor.open(at.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(at, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("serve: cannot listen on " + where + ": " + ec.message());
}

void Server::Impl::accept() {
  acceptor.async_accept(ioc, [this](beast::error_code ec, tcp::socket socket) {
    if (!acceptor.is_open()) return;  // draining
    if (ec) {                         // out of file descriptors, say: try again shortly rather than spin
      std::fprintf(stderr, "%s attend serve: accept failed: %s\n", utc_now().c_str(), ec.message().c_str());
      timer.expires_after(std::chrono::milliseconds(100));
      timer.async_wait([this](beast::error_code) { accept(); });
      return;
    }
    if (connections >= options.max_connections) {
      metrics.connection_refused();
      socket.close(ec);
    } else {
      std::make_shared<Session>(std::move(socket), *this)->start();
    }
    accept();
  });
}

void Server::Impl::watch_signals() {
  signals.async_wait([this](beast::error_code ec, int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      std::fprintf(stderr, "%s attend serve: SIGHUP: reloading every model\n", utc_now().c_str());
      if (reload(nullptr, "").status == 409)
        std::fprintf(stderr, "%s attend serve: SIGHUP ignored: a reload is already running\n", utc_now().c_str());
    } else {
      begin_drain();
    }
    watch_signals();
  });
}

void Server::Impl::begin_drain() {
  if (draining) {
    std::fprintf(stderr, "%s attend serve: second signal: exiting now, %zu requests unanswered\n", utc_now().c_str(),
                 in_flight.load());
    abandoned = true;
    ioc.stop();
    return;
  }
  draining = true;
  beast::error_code ignored;
  acceptor.close(ignored);
  std::fprintf(stderr, "%s attend serve: stopping: no new connections, finishing %zu requests\n", utc_now().c_str(),
               in_flight.load());
  drain_deadline = Clock::now() + options.drain_timeout;
  poll_drain();
}

void Server::Impl::poll_drain() {
  if (in_flight == 0) return ioc.stop();
  if (Clock::now() >= drain_deadline) {
    std::fprintf(stderr, "%s attend serve: drain timed out after %lld ms, %zu requests unanswered\n", utc_now().c_str(),
                 static_cast<long long>(options.drain_timeout.count()), in_flight.load());
    abandoned = true;
    return ioc.stop();
  }
  timer.expires_after(std::chrono::milliseconds(10));
  timer.async_wait([this](beast::error_code) { poll_drain(); });
}

Response Server::Impl::dispatch(const std::shared_ptr<Session>& s, const http::request<http::string_body>& req) {
  const std::string route = route_of(req.target());
  const bool get = req.method() == http::verb::get, post = req.method() == http::verb::post;
  if (route == "/health") {
    if (!get) return {405, error_body("use GET"), "application/json", "", false, 0, "GET"};
    return draining ? Response{503, "{\"status\":\"draining\"}\n"} : Response{200, "{\"status\":\"ok\"}\n"};
  }
  if (route == "/metrics" || route == "/v1/models") {
    if (!get) return {405, error_body("use GET"), "application/json", "", false, 0, "GET"};
    if (route == "/v1/models") return {200, dump(models_json()) + "\n"};
    return {200, metrics.render({batcher.queued(), in_flight, connections}), "text/plain; version=0.0.4"};
  }
  if (route == "other") return error(404, "no such endpoint: " + std::string(req.target().substr(0, 200)));
  if (!post) return {405, error_body("use POST"), "application/json", "", false, 0, "POST"};
  if (route == "/v1/models/reload") return reload(s, req.body());
  return submit(s, req.body(), route == "/v1/align");
}

nlohmann::json Server::Impl::models_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& m : models.all()) list.push_back(m->describe());
  return {{"models", list}};
}

Response Server::Impl::submit(const std::shared_ptr<Session>& s, const std::string& body, bool align) {
  if (draining) return {503, error_body("the server is shutting down"), "application/json", "", true};
  auto p = std::make_shared<Pending>();
  p->session = s;
  p->request = parse_translate_request(body, align, options.limits);
  p->model = models.get(p->request.model);
  if (!p->model) {
    std::string names;
    for (const auto& m : models.all()) names += (names.empty() ? "" : ", ") + m->name;
    throw ApiError(404, "no model named '" + p->request.model + "' (models: " + names + ")");
  }
  const std::string served = to_string(p->model->translator.precision());
  if (!p->request.precision.empty() && p->request.precision != served)
    throw ApiError(400, "field 'precision': model '" + p->request.model + "' decodes in " + served +
                            " (attend serve --precision), got '" + p->request.precision + "'");
  const Tokenizer& tok = p->model->translator.source_tokenizer();
  for (size_t i = 0; i < p->request.texts.size(); ++i) {
    try {
      p->source_tokens += static_cast<int64_t>(tok.split(p->request.texts[i]).size()) + 1;
    } catch (const std::exception& e) {
      throw ApiError(400, "field 'text'[" + std::to_string(i) + "]: " + e.what());
    }
  }
  const std::string group = p->model->name + "#" + std::to_string(p->model->generation) + "/beam" +
                            std::to_string(p->request.beam) + "/n" + std::to_string(p->request.n_best);
  const int64_t cost = p->source_tokens;
  if (!batcher.submit(group, cost, std::move(p))) {
    Response r = error(
        503, "the queue is full (" + std::to_string(options.batcher.max_queue) + " requests waiting); retry later");
    r.retry_after = 1;
    return r;
  }
  return {0};
}

void Server::Impl::run_batch(std::vector<std::shared_ptr<Pending>>& batch) {
  const Pending& first = *batch.front();
  std::vector<std::string> texts;
  int64_t source_tokens = 0;
  for (const auto& p : batch) {
    texts.insert(texts.end(), p->request.texts.begin(), p->request.texts.end());
    source_tokens += p->source_tokens;
  }
  DecodeOptions o;
  o.beam = first.request.beam;
  o.nbest = first.request.n_best;
  const auto t0 = Clock::now();
  std::vector<Translation> out;
  std::string failure;
  try {
    out = first.model->translator.translate(texts, o, static_cast<int>(texts.size()), options.batcher.max_batch_cost);
  } catch (const std::bad_alloc&) {
    failure = "out of memory";
  } catch (const std::exception& e) {
    failure = e.what();
  }
  int64_t output_tokens = 0;
  for (const Translation& t : out) output_tokens += static_cast<int64_t>(t.target_tokens.size());
  metrics.batch(batch.size(), texts.size(), source_tokens, output_tokens,
                std::chrono::duration<double>(Clock::now() - t0).count());
  size_t k = 0;
  for (const auto& p : batch) {
    if (!failure.empty()) {
      post_reply(p->session, error(500, "decoding failed: " + failure));
      continue;
    }
    nlohmann::json list = nlohmann::json::array();
    int64_t produced = 0;
    for (size_t i = 0; i < p->request.texts.size(); ++i, ++k) {
      list.push_back(translation_json(out[k], p->request));
      produced += static_cast<int64_t>(out[k].target_tokens.size());
    }
    Response r{200, dump({{"model", p->model->name}, {"translations", std::move(list)}}) + "\n"};
    r.note = "model=" + p->model->name + " inputs=" + std::to_string(p->request.texts.size()) +
             " tokens=" + std::to_string(p->source_tokens) + "/" + std::to_string(produced) +
             " batch=" + std::to_string(texts.size());
    post_reply(p->session, std::move(r));
  }
}

void Server::Impl::post_reply(const std::shared_ptr<Session>& s, Response r) {
  if (!s) return;
  net::post(ioc, [s, r = std::move(r)]() mutable { s->reply(std::move(r)); });
}

// Loads on a thread of its own (seconds, for a large model), answering when done; one at a time.
Response Server::Impl::reload(const std::shared_ptr<Session>& s, const std::string& body) {
  const std::string name = s ? parse_reload_request(body) : "";
  if (!name.empty() && !models.get(name)) throw ApiError(404, "no model named '" + name + "'");
  if (reloading.exchange(true)) return error(409, "a reload is already running");
  if (reload_thread.joinable()) reload_thread.join();  // the previous one, finished
  reload_thread = std::thread([this, s, name] {
    Response r;
    try {
      const std::vector<std::string> names = models.reload(name);
      r = {200, dump({{"reloaded", names}}) + "\n"};
    } catch (const std::exception& e) {
      r = error(500, std::string("reload failed, the old model keeps serving: ") + e.what());
    }
    std::fprintf(stderr, "%s attend serve: reload%s%s: %d %s", utc_now().c_str(), name.empty() ? "" : " ", name.c_str(),
                 r.status, r.body.c_str());
    reloading = false;
    post_reply(s, std::move(r));
  });
  return {0};
}

Server::Server(ModelSet& models, ServerOptions options) {
  options.validate();
  impl_ = std::make_unique<Impl>(models, std::move(options));
}

Server::~Server() = default;

int Server::run(const std::function<void(int port)>& on_listening) {
  Impl& s = *impl_;
  s.listen();
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) s.signals.add(sig);
  s.watch_signals();
  s.accept();
  on_listening(s.acceptor.local_endpoint().port());
  s.ioc.run();
  s.batcher.stop(/*discard=*/s.abandoned);
  if (s.reload_thread.joinable()) s.reload_thread.join();
  return s.abandoned ? 1 : 0;
}

}  // namespace attend::serve
