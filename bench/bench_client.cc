#include "bench/bench_client.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/metrics.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "httplib.h"
#include "pqxx/pqxx"

namespace rampart::bench {

// --- BenchAgent --------------------------------------------------------------

BenchAgent::BenchAgent(const Options& options, OnMessage on_message)
    : options_(options), on_message_(std::move(on_message)) {}

void BenchAgent::Start(v1::AgentService::Stub& stub, const v1::Hello& hello) {
  stub.async()->Connect(&context_, this);
  // The hold keeps the call alive for writes started outside reactions
  // (Send from the benchmark's threads) until Close(). Only valid once the
  // reactor is bound to the call.
  AddHold();
  auto m = std::make_shared<v1::AgentMessage>();
  *m->mutable_hello() = hello;
  {
    absl::MutexLock lock(&mu_);
    outbox_.push_back(std::move(m));
  }
  StartRead(&read_);
  PumpWrites();  // the Hello goes out with the call
  StartCall();
}

bool BenchAgent::Send(std::shared_ptr<const v1::AgentMessage> message) {
  {
    absl::MutexLock lock(&mu_);
    if (close_requested_ || write_failed_) {
      return false;
    }
    outbox_.push_back(std::move(message));
  }
  PumpWrites();
  return true;
}

void BenchAgent::PumpWrites() {
  const v1::AgentMessage* next = nullptr;
  bool writes_done = false;
  {
    absl::MutexLock lock(&mu_);
    if (write_in_flight_ || writes_done_started_) {
      return;
    }
    if (!outbox_.empty() && !write_failed_) {
      write_in_flight_ = true;
      next = outbox_.front().get();  // stays queued until OnWriteDone
    } else if (close_requested_) {
      writes_done_started_ = true;
      writes_done = !write_failed_;
    }
  }
  // Never hold mu_ across StartWrite (CONVENTIONS, gRPC rules).
  if (next != nullptr) {
    StartWrite(next);
  } else if (writes_done) {
    StartWritesDone();
  }
}

void BenchAgent::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    if (!outbox_.empty()) {
      outbox_.pop_front();
    }
    if (!ok) {
      write_failed_ = true;
      outbox_.clear();
    }
  }
  PumpWrites();
}

void BenchAgent::OnWritesDoneDone(bool /*ok*/) {}

std::shared_ptr<const v1::AgentMessage> BenchAgent::EnforcedIfDueLocked(
    SteadyTime now, bool force) {
  if (!options_.report_enforced || revision_ == reported_revision_ ||
      close_requested_ || write_failed_) {
    return nullptr;
  }
  if (!force && now - last_report_ <
                    absl::ToChronoNanoseconds(options_.enforced_interval)) {
    return nullptr;
  }
  auto m = std::make_shared<v1::AgentMessage>();
  v1::EnforcedRevision* e = m->mutable_enforced_revision();
  e->set_ban_list_epoch(epoch_);
  e->set_revision(revision_);
  const int64_t ns = absl::ToUnixNanos(absl::Now());
  e->mutable_applied_at()->set_seconds(ns / 1000000000);
  e->mutable_applied_at()->set_nanos(static_cast<int32_t>(ns % 1000000000));
  reported_revision_ = revision_;
  last_report_ = now;
  return m;
}

void BenchAgent::OnReadDone(bool ok) {
  const SteadyTime at = SteadyClock::now();
  if (!ok) {
    return;  // the stream ended; OnDone follows
  }
  std::shared_ptr<const v1::AgentMessage> report;
  {
    absl::MutexLock lock(&mu_);
    switch (read_.payload_case()) {
      case v1::ServerMessage::kWelcome:
        welcomed_ = true;
        epoch_ = read_.welcome().ban_list_epoch();
        break;
      case v1::ServerMessage::kDelta: {
        const v1::BanListDelta& d = read_.delta();
        if (protocol_error_.ok() && d.from_revision() != revision_) {
          protocol_error_ = absl::DataLossError(
              absl::StrFormat("delta %d -> %d after revision %d",
                              d.from_revision(), d.to_revision(), revision_));
        }
        revision_ = d.to_revision();
        report = EnforcedIfDueLocked(at, /*force=*/false);
        break;
      }
      case v1::ServerMessage::kSnapshot:
        if (read_.snapshot().final_chunk()) {
          epoch_ = read_.snapshot().ban_list_epoch();
          revision_ = read_.snapshot().revision();
          report = EnforcedIfDueLocked(at, /*force=*/false);
        }
        break;
      default:
        break;
    }
  }
  if (on_message_) {
    on_message_(read_, at);
  }
  if (report != nullptr) {
    Send(std::move(report));
  }
  StartRead(&read_);
}

void BenchAgent::FlushEnforced() {
  std::shared_ptr<const v1::AgentMessage> report;
  {
    absl::MutexLock lock(&mu_);
    report = EnforcedIfDueLocked(SteadyClock::now(), /*force=*/true);
  }
  if (report != nullptr) {
    Send(std::move(report));
  }
}

void BenchAgent::Close() {
  bool release = false;
  {
    absl::MutexLock lock(&mu_);
    close_requested_ = true;
    release = !hold_released_;
    hold_released_ = true;
  }
  PumpWrites();
  if (release) {
    RemoveHold();
  }
}

void BenchAgent::OnDone(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  final_status_ = status;
}

absl::Status BenchAgent::WaitForWelcome(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return welcomed_ || final_status_.has_value();
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) {
    return absl::DeadlineExceededError("no Welcome");
  }
  if (!welcomed_) {
    return absl::Status(
        static_cast<absl::StatusCode>(final_status_->error_code()),
        "stream ended before Welcome: " + final_status_->error_message());
  }
  return absl::OkStatus();
}

absl::StatusOr<grpc::Status> BenchAgent::WaitDone(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return final_status_.has_value();
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&done), timeout)) {
    return absl::DeadlineExceededError("stream not done");
  }
  return *final_status_;
}

uint64_t BenchAgent::revision() const {
  absl::MutexLock lock(&mu_);
  return revision_;
}

absl::Status BenchAgent::protocol_error() const {
  absl::MutexLock lock(&mu_);
  return protocol_error_;
}

// --- Helpers -----------------------------------------------------------------

std::vector<std::shared_ptr<grpc::Channel>> MakeChannels(
    const std::string& target, int count) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  channels.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("rampart.bench.channel", i);  // one connection per channel
    args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
    args.SetMaxSendMessageSize(64 * 1024 * 1024);
    channels.push_back(grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args));
  }
  return channels;
}

std::string DurabilitySettings(const std::string& base_dsn) {
  try {
    pqxx::connection c(base_dsn);
    pqxx::nontransaction tx(c);
    std::string out;
    for (const char* name : {"fsync", "synchronous_commit", "full_page_writes",
                             "wal_sync_method"}) {
      const pqxx::result r = tx.exec_params(
          "SELECT setting FROM pg_settings WHERE name = $1", name);
      absl::StrAppendFormat(&out, "%s%s=%s", out.empty() ? "" : " ", name,
                            r.empty() ? "?" : r[0][0].c_str());
    }
    return out;
  } catch (const std::exception& e) {
    return std::string("unknown (") + e.what() + ")";
  }
}

PgCounters ReadPgCounters(const std::string& base_dsn) {
  PgCounters out;
  try {
    pqxx::connection c(base_dsn);
    pqxx::nontransaction tx(c);
    const pqxx::result r = tx.exec(
        "SELECT (SELECT checkpoints_timed + checkpoints_req FROM "
        "pg_stat_bgwriter)::float8, (SELECT wal_bytes FROM "
        "pg_stat_wal)::float8");
    out.checkpoints = r[0][0].as<double>();
    out.wal_bytes = r[0][1].as<double>();
  } catch (const std::exception& e) {
    absl::FPrintF(stderr, "reading PostgreSQL counters: %s\n", e.what());
  }
  return out;
}

double Percentile(std::vector<double>& values, double q) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(q * static_cast<double>(values.size()));
  const size_t index = static_cast<size_t>(std::clamp(
                           rank, 1.0, static_cast<double>(values.size()))) -
                       1;
  return values[index];
}

ScrapedHistogram ScrapedHistogram::Minus(
    const ScrapedHistogram& earlier) const {
  ScrapedHistogram out = *this;
  if (earlier.cumulative.size() == cumulative.size()) {
    for (size_t i = 0; i < cumulative.size(); ++i) {
      out.cumulative[i] -= earlier.cumulative[i];
    }
  }
  out.count -= earlier.count;
  out.sum -= earlier.sum;
  return out;
}

double ScrapedHistogram::QuantileUpperBound(double q) const {
  if (count <= 0) {
    return 0;
  }
  const double want = q * count;
  for (size_t i = 0; i < cumulative.size(); ++i) {
    if (cumulative[i] >= want) {
      return upper_bounds[i];
    }
  }
  return std::numeric_limits<double>::infinity();
}

absl::StatusOr<ScrapedHistogram> ScrapeHistogram(int http_port,
                                                 const std::string& name,
                                                 const std::string& label,
                                                 const std::string& value) {
  httplib::Client client("127.0.0.1", http_port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  auto res = client.Get("/metrics");
  if (!res || res->status != 200) {
    return absl::UnavailableError("GET /metrics failed");
  }
  absl::StatusOr<metrics::ParsedMetrics> parsed =
      metrics::ParsePrometheusText(res->body);
  if (!parsed.ok()) {
    return parsed.status();
  }
  ScrapedHistogram h;
  for (const metrics::ParsedSample& s : parsed->samples) {
    if (!label.empty() && std::find(s.labels.begin(), s.labels.end(),
                                    std::pair<std::string, std::string>(
                                        label, value)) == s.labels.end()) {
      continue;
    }
    if (s.name == name + "_bucket") {
      for (const auto& [key, le] : s.labels) {
        if (key == "le") {
          h.upper_bounds.push_back(le == "+Inf"
                                       ? std::numeric_limits<double>::infinity()
                                       : std::stod(le));
          h.cumulative.push_back(s.value);
        }
      }
    } else if (s.name == name + "_count") {
      h.count = s.value;
    } else if (s.name == name + "_sum") {
      h.sum = s.value;
    }
  }
  if (h.upper_bounds.empty()) {
    return absl::NotFoundError("no histogram " + name);
  }
  return h;
}

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    return absl::InternalError(
        absl::StrFormat("writing %s: %s", path, std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TempDir>> TempDir::Create() {
  char templ[] = "/tmp/rampart-bench.XXXXXX";
  if (mkdtemp(templ) == nullptr) {
    return absl::InternalError(
        absl::StrFormat("mkdtemp: %s", std::strerror(errno)));
  }
  return std::unique_ptr<TempDir>(new TempDir(templ));
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

absl::StatusOr<std::unique_ptr<testing::ServerProcess>> StartServer(
    const TempDir& dir, const std::string& config_yaml,
    const std::string& db_flag) {
  const std::string config_path = dir.path() + "/rampart-server.yaml";
  if (absl::Status s = WriteFile(config_path, config_yaml); !s.ok()) {
    return s;
  }
  return testing::ServerProcess::Start(
      testing::ServerBinary(),
      {"--insecure", "--config", config_path, "--db", db_flag, "--listen",
       "127.0.0.1:0", "--http-listen", "127.0.0.1:0"});
}

double ProcessCpuSeconds(int pid) {
  const std::string path =
      pid == 0 ? "/proc/self/stat" : absl::StrFormat("/proc/%d/stat", pid);
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) {
    return -1;
  }
  // Fields after the parenthesised command name; utime and stime are the
  // 14th and 15th fields of the whole line.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) {
    return -1;
  }
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  double utime = 0;
  double stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) {
      utime = std::stod(field);
    } else if (i == 15) {
      stime = std::stod(field);
    }
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

MachineCpu ReadMachineCpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  MachineCpu out;
  if (!(in >> cpu) || cpu != "cpu") {
    return out;
  }
  // user nice system idle iowait irq softirq steal
  double v[8] = {};
  for (double& x : v) {
    in >> x;
  }
  for (int i = 0; i < 8; ++i) {
    out.total += v[i];
    if (i != 3 && i != 4) {
      out.busy += v[i];
    }
  }
  return out;
}

absl::flat_hash_map<int, double> CommandCpuSeconds(std::string_view command) {
  absl::flat_hash_map<int, double> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    int pid = 0;
    if (!absl::SimpleAtoi(name, &pid) || pid <= 0) {
      continue;
    }
    std::ifstream comm(entry.path() / "comm");
    std::string line;
    if (!std::getline(comm, line) || line != command) {
      continue;
    }
    const double seconds = ProcessCpuSeconds(pid);
    if (seconds >= 0) {
      out[pid] = seconds;
    }
  }
  return out;
}

double CommandCpuDelta(const absl::flat_hash_map<int, double>& before,
                       const absl::flat_hash_map<int, double>& after) {
  double sum = 0;
  for (const auto& [pid, seconds] : after) {
    const auto it = before.find(pid);
    sum += seconds - (it == before.end() ? 0 : it->second);
  }
  return sum;
}

}  // namespace rampart::bench
