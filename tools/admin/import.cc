#include "tools/admin/import.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/grpc/status.h"
#include "common/grpc/tls.h"
#include "telemetry/v1/ingest.grpc.pb.h"

namespace telemetry::admin {

// ---------------------------------------------------------------- files

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(err)));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return std::unique_ptr<MappedFile>(new MappedFile(nullptr, 0));
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) {
    return absl::UnavailableError(absl::StrCat(path, ": mmap: ", std::strerror(err)));
  }
  ::madvise(p, size, MADV_SEQUENTIAL);
  return std::unique_ptr<MappedFile>(new MappedFile(static_cast<const char*>(p), size));
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
}

DataStart FindDataStart(absl::string_view body) {
  // Only `#` comment lines and blank lines may come before `# DDL`.
  size_t pos = 0;
  int64_t line = 1;
  bool in_ddl = false;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    const size_t next = end == absl::string_view::npos ? body.size() : end + 1;
    absl::string_view text = body.substr(pos, next - pos);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    if (in_ddl) {
      if (text == "# DML") return {next, line + 1};
    } else if (text == "# DDL") {
      in_ddl = true;
    } else if (!text.empty() && text.front() != '#') {
      return {};  // data before any DDL section: a plain line-protocol file
    }
    pos = next;
    ++line;
  }
  if (in_ddl) return {body.size(), line};  // DDL without data
  return {};
}

absl::StatusOr<ImportCheckpoint> ReadCheckpoint(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no checkpoint yet"));
    return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  std::fclose(f);
  ImportCheckpoint c;
  std::set<std::string> seen;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    int64_t v = 0;
    if (!absl::SimpleAtoi(kv.second, &v)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": not a checkpoint line: ", line));
    }
    seen.insert(kv.first);
    if (kv.first == "file_size") c.file_size = v;
    if (kv.first == "offset") c.offset = v;
    if (kv.first == "line") c.line = v;
    if (kv.first == "readings") c.readings = v;
    if (kv.first == "accepted") c.accepted = v;
    if (kv.first == "malformed_lines") c.malformed_lines = v;
    if (kv.first == "refused_lines") c.refused_lines = v;
    if (kv.first == "complete") c.complete = v != 0;
  }
  for (const char* required : {"file_size", "offset", "line"}) {
    if (seen.count(required) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": no ", required, " in checkpoint"));
    }
  }
  if (c.offset < 0 || c.offset > c.file_size) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": offset out of range"));
  }
  return c;
}

absl::Status WriteCheckpoint(const std::string& path, const ImportCheckpoint& c) {
  const std::string text = absl::StrCat(
      "file_size=", c.file_size, "\noffset=", c.offset, "\nline=", c.line,
      "\nreadings=", c.readings, "\naccepted=", c.accepted, "\nmalformed_lines=", c.malformed_lines,
      "\nrefused_lines=", c.refused_lines, "\ncomplete=", c.complete ? 1 : 0, "\n");
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(absl::StrCat(tmp, ": ", std::strerror(errno)));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return absl::UnavailableError(absl::StrCat(tmp, ": ", std::strerror(err)));
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return absl::UnavailableError(absl::StrCat(tmp, ": ", std::strerror(errno)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat(path, ": rename: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- gRPC

namespace {

class GrpcWriteSender final : public WriteSender {
 public:
  GrpcWriteSender(const GrpcSenderOptions& options,
                  std::vector<std::unique_ptr<v1::IngestService::Stub>> stubs)
      : options_(options), stubs_(std::move(stubs)) {}

  absl::Status Write(const v1::WriteRequest& request, v1::WriteResponse* response,
                     int64_t* retry_after_ms) override {
    *retry_after_ms = -1;
    auto& stub = stubs_[next_.fetch_add(1) % stubs_.size()];
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + options_.api_key);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(options_.deadline_ms));
    grpc::Status st = stub->Write(&ctx, request, response);
    if (st.ok()) return absl::OkStatus();
    const auto& md = ctx.GetServerTrailingMetadata();
    if (auto it = md.find("retry-after-ms"); it != md.end()) {
      int64_t ms = 0;
      if (absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &ms)) {
        *retry_after_ms = std::max<int64_t>(0, ms);
      }
    }
    return FromGrpcStatus(st);
  }

 private:
  GrpcSenderOptions options_;
  std::vector<std::unique_ptr<v1::IngestService::Stub>> stubs_;
  std::atomic<size_t> next_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<WriteSender>> NewGrpcWriteSender(const GrpcSenderOptions& options) {
  auto creds = ChannelCredentialsFor({options.tls_ca, options.tls_cert, options.tls_key});
  if (!creds.ok()) return creds.status();
  std::vector<std::unique_ptr<v1::IngestService::Stub>> stubs;
  for (int i = 0; i < std::max(1, options.channels); ++i) {
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(64 << 20);
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetInt("grpc.channel_id", i);  // distinct connections
    stubs.push_back(
        v1::IngestService::NewStub(grpc::CreateCustomChannel(options.target, *creds, args)));
  }
  return std::unique_ptr<WriteSender>(new GrpcWriteSender(options, std::move(stubs)));
}

// ---------------------------------------------------------------- import

namespace {

struct Batch {
  int64_t seq = 0;
  int64_t end_offset = 0;  // the next batch starts here
  int64_t end_line = 0;
  int64_t first_line = 0;
  int64_t malformed = 0;
  v1::WriteRequest request;
  std::vector<int64_t> line_of;  // the line of each reading
};

// Which batches are acknowledged, and the checkpoint: the end of the
// longest acknowledged run of batches from the start.
class Tracker {
 public:
  explicit Tracker(const ImportCheckpoint& start) : prefix_(start) {}

  void Add(const Batch& b) {
    std::lock_guard<std::mutex> lock(mu_);
    State& s = pending_[b.seq];
    s.end_offset = b.end_offset;
    s.end_line = b.end_line;
    s.malformed = b.malformed;
  }

  void Ack(int64_t seq, int64_t readings, int64_t accepted, int64_t refused_lines) {
    std::lock_guard<std::mutex> lock(mu_);
    State& s = pending_[seq];
    s.acked = true;
    s.readings = readings;
    s.accepted = accepted;
    s.refused_lines = refused_lines;
    acked_readings_ += readings;
    while (!pending_.empty() && pending_.begin()->second.acked) {
      const State& d = pending_.begin()->second;
      prefix_.offset = d.end_offset;
      prefix_.line = d.end_line;
      prefix_.readings += d.readings;
      prefix_.accepted += d.accepted;
      prefix_.malformed_lines += d.malformed;
      prefix_.refused_lines += d.refused_lines;
      pending_.erase(pending_.begin());
    }
  }

  ImportCheckpoint Checkpoint() const {
    std::lock_guard<std::mutex> lock(mu_);
    return prefix_;
  }
  // Readings acknowledged by this run (also those past the checkpoint).
  int64_t acked_readings() const {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_readings_;
  }
  // Malformed and refused lines seen so far (also past the checkpoint).
  std::pair<int64_t, int64_t> ProblemLines() const {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t malformed = prefix_.malformed_lines, refused = prefix_.refused_lines;
    for (const auto& [seq, s] : pending_) {
      malformed += s.malformed;
      refused += s.refused_lines;
    }
    return {malformed, refused};
  }

 private:
  struct State {
    int64_t end_offset = 0, end_line = 0, malformed = 0;
    bool acked = false;
    int64_t readings = 0, accepted = 0, refused_lines = 0;
  };
  mutable std::mutex mu_;
  ImportCheckpoint prefix_;
  std::map<int64_t, State> pending_;
  int64_t acked_readings_ = 0;
};

// A bounded queue of batches between the parser and the senders.
class BatchQueue {
 public:
  explicit BatchQueue(size_t capacity) : capacity_(capacity) {}
  // False when the queue was closed (nothing more is taken).
  bool Push(Batch&& b) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return closed_ || q_.size() < capacity_; });
    if (closed_) return false;
    q_.push_back(std::move(b));
    not_empty_.notify_one();
    return true;
  }
  std::optional<Batch> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return !q_.empty() || closed_ || finished_; });
    if (q_.empty() || closed_) return std::nullopt;
    Batch b = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return b;
  }
  // No more batches will come; senders finish what is queued.
  void Finish() {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    not_empty_.notify_all();
  }
  // Stop now: queued batches are dropped (they stay unacknowledged).
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<Batch> q_;
  size_t capacity_;
  bool finished_ = false, closed_ = false;
};

bool Retryable(absl::StatusCode code) {
  return code == absl::StatusCode::kResourceExhausted || code == absl::StatusCode::kUnavailable ||
         code == absl::StatusCode::kDeadlineExceeded;
}

int64_t LinesIn(absl::string_view text) {
  return static_cast<int64_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

absl::StatusOr<ImportResult> RunImport(const ImportOptions& options, WriteSender* sender,
                                       const std::function<void(const ImportProgress&)>& progress,
                                       const std::atomic<bool>* stop) {
  if (options.batch < 1 || options.batch > 50000) {
    return absl::InvalidArgumentError("--batch must be within 1..50000 (a Write's limit)");
  }
  if (options.concurrency < 1) return absl::InvalidArgumentError("--concurrency must be >= 1");
  auto file = MappedFile::Open(options.file);
  if (!file.ok()) return file.status();
  const absl::string_view body = (*file)->data();
  const int64_t size = static_cast<int64_t>(body.size());

  ImportCheckpoint start;
  bool resumed = false;
  start.file_size = size;
  const DataStart data = FindDataStart(body);
  start.offset = static_cast<int64_t>(data.offset);
  start.line = data.line;
  if (!options.checkpoint.empty()) {
    auto saved = ReadCheckpoint(options.checkpoint);
    if (saved.ok()) {
      if (saved->file_size != size) {
        return absl::FailedPreconditionError(
            absl::StrCat(options.checkpoint, " belongs to a file of ", saved->file_size, " bytes; ",
                         options.file, " has ", size,
                         " (remove the checkpoint to import this file from its start)"));
      }
      start = *saved;
      resumed = true;
    } else if (!absl::IsNotFound(saved.status())) {
      return saved.status();
    }
  }

  ImportResult result;
  result.resumed = resumed;
  result.resumed_at = start.offset;
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };

  Tracker tracker(start);
  BatchQueue queue(static_cast<size_t>(options.concurrency));
  std::mutex problems_mu;
  std::vector<std::string> problems;
  auto note_problem = [&](std::string text) {
    std::lock_guard<std::mutex> lock(problems_mu);
    if (problems.size() < options.max_listed) problems.push_back(std::move(text));
  };
  std::atomic<bool> aborting{false};
  std::atomic<int64_t> retries{0};
  std::mutex fatal_mu;
  absl::Status fatal;
  auto fail = [&](absl::Status st) {
    {
      std::lock_guard<std::mutex> lock(fatal_mu);
      if (fatal.ok()) fatal = std::move(st);
    }
    aborting = true;
    queue.Close();
  };
  auto stopped = [&] { return aborting.load() || (stop != nullptr && stop->load()); };

  // Senders.
  std::vector<std::thread> senders;
  for (int w = 0; w < options.concurrency; ++w) {
    senders.emplace_back([&] {
      while (std::optional<Batch> b = queue.Pop()) {
        if (b->request.readings_size() == 0) {
          tracker.Ack(b->seq, 0, 0, 0);
          continue;
        }
        v1::WriteResponse response;
        int64_t backoff_ms = options.initial_backoff_ms;
        std::optional<std::chrono::steady_clock::time_point> failing_since;
        bool sent = false;
        while (!stopped()) {
          response.Clear();
          int64_t retry_after_ms = -1;
          absl::Status st = sender->Write(b->request, &response, &retry_after_ms);
          if (st.ok()) {
            sent = true;
            break;
          }
          if (!Retryable(st.code())) {
            fail(absl::Status(st.code(), absl::StrCat("the batch from line ", b->first_line,
                                                      " was refused: ", st.message())));
            break;
          }
          if (!failing_since) failing_since = std::chrono::steady_clock::now();
          if (seconds_since(*failing_since) * 1000 >= static_cast<double>(options.give_up_ms)) {
            fail(absl::Status(
                st.code(), absl::StrCat("gave up on the batch from line ", b->first_line, " after ",
                                        options.give_up_ms, " ms of retries: ", st.message())));
            break;
          }
          const int64_t wait_ms = retry_after_ms >= 0 ? retry_after_ms : backoff_ms;
          backoff_ms = std::min(options.max_backoff_ms, backoff_ms * 2);
          ++retries;
          SleepUnlessStopped(wait_ms * kNsPerMs, &aborting);
          if (stop != nullptr && stop->load()) break;
        }
        if (!sent) continue;
        std::set<int64_t> refused;
        for (const v1::RejectedReading& r : response.rejected()) {
          const int64_t line = r.index() >= 0 && static_cast<size_t>(r.index()) < b->line_of.size()
                                   ? b->line_of[static_cast<size_t>(r.index())]
                                   : b->first_line;
          if (refused.insert(line).second) {
            note_problem(absl::StrCat("line ", line, ": refused (", r.field(), "): ", r.reason()));
          }
        }
        tracker.Ack(b->seq, b->request.readings_size(), response.accepted(),
                    static_cast<int64_t>(refused.size()));
      }
    });
  }

  // Progress and the checkpoint, every interval and once at the end.
  std::atomic<bool> monitor_done{false};
  int64_t last_written_offset = -1;
  int64_t last_readings = 0;
  auto last_report = t0;
  auto report = [&](bool final_report) {
    ImportCheckpoint c = tracker.Checkpoint();
    if (final_report && !aborting && (stop == nullptr || !stop->load()) && c.offset == size) {
      c.complete = true;
    }
    if (!options.checkpoint.empty() && (c.offset != last_written_offset || final_report)) {
      absl::Status st = WriteCheckpoint(options.checkpoint, c);
      if (!st.ok()) {
        fail(st);
      } else {
        last_written_offset = c.offset;
      }
    }
    const auto [malformed, refused] = tracker.ProblemLines();
    ImportProgress p;
    p.readings = start.readings + tracker.acked_readings();
    p.bytes_done = c.offset;
    p.file_size = size;
    p.malformed_lines = malformed;
    p.refused_lines = refused;
    p.retries = retries;
    p.seconds = seconds_since(t0);
    const int64_t this_run = p.readings - start.readings;
    p.rate = p.seconds > 0 ? static_cast<double>(this_run) / p.seconds : 0;
    const double since = seconds_since(last_report);
    p.rate_now = since > 0 ? static_cast<double>(this_run - last_readings) / since : 0;
    last_readings = this_run;
    last_report = std::chrono::steady_clock::now();
    if (progress) progress(p);
    return c;
  };
  std::thread monitor([&] {
    std::atomic<bool>* done = &monitor_done;
    while (SleepUnlessStopped(options.progress_interval_ms * kNsPerMs, done)) report(false);
  });

  // The parser: batches of at least `batch` readings, cut at line starts.
  lineproto::Parser parser(body.substr(static_cast<size_t>(start.offset)));
  const int64_t base_line = start.line - 1;
  lineproto::Point point;
  std::string error;
  Batch cur;
  int64_t seq = 0;
  int64_t queued_readings = 0;
  cur.first_line = start.line;
  auto offset_of_line = [&] {
    return static_cast<int64_t>(parser.line_text().data() - body.data());
  };
  auto push = [&](int64_t end_offset, int64_t end_line) {
    cur.seq = seq++;
    cur.end_offset = end_offset;
    cur.end_line = end_line;
    queued_readings += cur.request.readings_size();
    tracker.Add(cur);
    bool ok = queue.Push(std::move(cur));
    cur = Batch();
    cur.first_line = end_line;
    return ok;
  };
  int64_t last_line = start.line;
  size_t last_line_start = static_cast<size_t>(start.offset);
  bool read_all = false;
  while (!stopped()) {
    const auto r = parser.Next(&point, &error);
    if (r == lineproto::Parser::Result::kEnd) {
      read_all = true;
      break;
    }
    const int64_t line = base_line + parser.line_number();
    last_line = line;
    last_line_start = static_cast<size_t>(offset_of_line());
    if (r == lineproto::Parser::Result::kError) {
      ++cur.malformed;
      note_problem(absl::StrCat("line ", line, ": malformed: ", error, ": ", parser.line_text()));
      continue;
    }
    if (cur.request.readings_size() >= options.batch) {
      if (!push(offset_of_line(), line)) break;
      if (options.max_rate > 0) {
        const double due = static_cast<double>(queued_readings) / options.max_rate;
        const double elapsed = seconds_since(t0);
        if (due > elapsed) {
          SleepUnlessStopped(static_cast<int64_t>((due - elapsed) * 1e9), &aborting);
        }
      }
    }
    const int before = cur.request.readings_size();
    absl::Status st =
        lineproto::AppendReadings(point, options.mapping, cur.request.mutable_readings());
    if (!st.ok()) {
      ++cur.malformed;
      note_problem(absl::StrCat("line ", line, ": malformed: ", st.message()));
      continue;
    }
    cur.line_of.insert(cur.line_of.end(), static_cast<size_t>(cur.request.readings_size() - before),
                       line);
  }
  if (read_all) {
    push(size, last_line + LinesIn(body.substr(last_line_start)));
    queue.Finish();
  } else {
    queue.Close();  // stopped: what is queued stays unacknowledged
  }
  for (auto& t : senders) t.join();
  monitor_done = true;
  monitor.join();
  const ImportCheckpoint final_state = report(true);
  {
    std::lock_guard<std::mutex> lock(fatal_mu);
    if (!fatal.ok()) return fatal;
  }
  result.checkpoint = final_state;
  result.readings_this_run = tracker.acked_readings();
  result.retries = retries;
  result.seconds = seconds_since(t0);
  result.problems = std::move(problems);
  return result;
}

int ImportCommand(const ImportOptions& options, const GrpcSenderOptions& sender_options) {
  if (options.file.empty() || sender_options.target.empty()) {
    std::fprintf(stderr, "import needs --file and --ingest (and --api_key)\n");
    return 2;
  }
  auto sender = NewGrpcWriteSender(sender_options);
  if (!sender.ok()) {
    std::fprintf(stderr, "import: %s\n", std::string(sender.status().message()).c_str());
    return 2;
  }
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  auto progress = [tty](const ImportProgress& p) {
    std::fprintf(stderr,
                 "%simport: %lld readings, %.0f readings/s (%.0f/s now), %.1f of %.1f MiB"
                 " (%.1f %%), %lld malformed and %lld refused lines, %lld retries%s",
                 tty ? "\r" : "", static_cast<long long>(p.readings), p.rate, p.rate_now,
                 static_cast<double>(p.bytes_done) / (1 << 20),
                 static_cast<double>(p.file_size) / (1 << 20),
                 p.file_size > 0
                     ? 100.0 * static_cast<double>(p.bytes_done) / static_cast<double>(p.file_size)
                     : 100.0,
                 static_cast<long long>(p.malformed_lines), static_cast<long long>(p.refused_lines),
                 static_cast<long long>(p.retries), tty ? "" : "\n");
  };
  auto result = RunImport(options, sender->get(), progress);
  if (tty) std::fprintf(stderr, "\n");
  if (!result.ok()) {
    std::fprintf(stderr, "import stopped: %s\n", result.status().ToString().c_str());
    if (!options.checkpoint.empty()) {
      std::fprintf(stderr, "run the same command again to continue from %s\n",
                   options.checkpoint.c_str());
    }
    return 1;
  }
  const ImportCheckpoint& c = result->checkpoint;
  for (const std::string& p : result->problems) std::fprintf(stderr, "%s\n", p.c_str());
  if (result->resumed) {
    std::printf("resumed at byte %lld of %lld\n", static_cast<long long>(result->resumed_at),
                static_cast<long long>(c.file_size));
  }
  std::printf(
      "readings=%lld accepted=%lld malformed_lines=%lld refused_lines=%lld"
      " readings_this_run=%lld seconds=%.3f readings_per_s=%.0f retries=%lld complete=%d\n",
      static_cast<long long>(c.readings), static_cast<long long>(c.accepted),
      static_cast<long long>(c.malformed_lines), static_cast<long long>(c.refused_lines),
      static_cast<long long>(result->readings_this_run), result->seconds,
      result->seconds > 0 ? static_cast<double>(result->readings_this_run) / result->seconds : 0,
      static_cast<long long>(result->retries), c.complete ? 1 : 0);
  if (c.malformed_lines > 0 || c.refused_lines > 0) {
    std::printf(
        "NOT all lines stored: %lld malformed, %lld with readings the platform refused"
        " (the first are listed above with their line numbers)\n",
        static_cast<long long>(c.malformed_lines), static_cast<long long>(c.refused_lines));
    return 1;
  }
  std::printf("every line stored\n");
  return 0;
}

}  // namespace telemetry::admin
