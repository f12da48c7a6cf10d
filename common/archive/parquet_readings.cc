// Parquet files of readings with Apache Arrow C++ (parquet_readings.h).
// Rows are buffered per row group as plain columns (the string columns as
// indexes into a per-row-group dictionary, looked up once per series run, not
// per reading) and written column chunk by column chunk.
#include "common/archive/parquet_readings.h"

#include <openssl/evp.h>

#include <filesystem>
#include <functional>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "arrow/api.h"
#include "arrow/filesystem/filesystem.h"
#include "common/archive/archive_fs_internal.h"
#include "common/status_macros.h"
#include "parquet/arrow/reader.h"
#include "parquet/arrow/writer.h"
#include "parquet/metadata.h"
#include "parquet/properties.h"
#include "parquet/statistics.h"

namespace telemetry::archive {
namespace {

constexpr char kFormatKey[] = "telemetry.archive.format";
constexpr char kFormatVersion[] = "1";
constexpr char kTenantKey[] = "telemetry.tenant_id";
constexpr char kHourKey[] = "telemetry.hour_start_ns";
constexpr char kVersionKey[] = "telemetry.export_version";

std::shared_ptr<arrow::Schema> ReadingsSchema(const ParquetFileInfo& info) {
  auto dict = arrow::dictionary(arrow::int32(), arrow::utf8());
  auto meta = arrow::key_value_metadata(
      {kFormatKey, kTenantKey, kHourKey, kVersionKey},
      {kFormatVersion, absl::StrCat(info.tenant_id), absl::StrCat(info.hour_start_ns),
       absl::StrCat(info.export_version)});
  return arrow::schema(
      {
          arrow::field("device", dict, false),
          arrow::field("sensor", dict, false),
          arrow::field("unit", dict, false),
          arrow::field("project", dict, false),
          arrow::field("labels", dict, false),
          arrow::field("ts", arrow::timestamp(arrow::TimeUnit::NANO, "UTC"), false),
          arrow::field("value_double", arrow::float64(), true),
          arrow::field("value_string", arrow::utf8(), true),
          arrow::field("value_bool", arrow::boolean(), true),
          arrow::field("status", arrow::int32(), false),
      },
      meta);
}

// The distinct values of one string column in the current row group.
class Dictionary {
 public:
  int32_t Index(const std::string& value) {
    auto [it, inserted] = index_.try_emplace(value, static_cast<int32_t>(values_.size()));
    if (inserted) values_.push_back(value);
    return it->second;
  }
  arrow::Result<std::shared_ptr<arrow::Array>> Finish() {
    arrow::StringBuilder b;
    ARROW_RETURN_NOT_OK(b.AppendValues(values_));
    return b.Finish();
  }
  void Clear() {
    values_.clear();
    index_.clear();
  }

 private:
  std::vector<std::string> values_;
  absl::flat_hash_map<std::string, int32_t> index_;
};

// The sink of a file being written: forwards every byte and hashes it on
// the way (SHA-256), so the digest costs no second read (on S3, a download).
class HashingOutputStream final : public arrow::io::OutputStream {
 public:
  explicit HashingOutputStream(std::shared_ptr<arrow::io::OutputStream> inner)
      : inner_(std::move(inner)), ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) ctx_.reset();
  }
  arrow::Status Close() override { return inner_->Close(); }
  arrow::Status Abort() override { return inner_->Abort(); }
  bool closed() const override { return inner_->closed(); }
  arrow::Result<int64_t> Tell() const override { return bytes_; }
  arrow::Status Flush() override { return inner_->Flush(); }
  arrow::Status Write(const void* data, int64_t n) override {
    Hash(data, n);
    return inner_->Write(data, n);
  }
  arrow::Status Write(const std::shared_ptr<arrow::Buffer>& data) override {
    Hash(data->data(), data->size());
    return inner_->Write(data);
  }
  int64_t bytes() const { return bytes_; }
  absl::StatusOr<std::string> HexDigest() {
    if (ctx_ == nullptr) return absl::InternalError("EVP sha256 init failed");
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &len);
    return absl::BytesToHexString(
        absl::string_view(reinterpret_cast<const char*>(digest), static_cast<size_t>(len)));
  }

 private:
  void Hash(const void* data, int64_t n) {
    if (ctx_ != nullptr) EVP_DigestUpdate(ctx_.get(), data, static_cast<size_t>(n));
    bytes_ += n;
  }
  std::shared_ptr<arrow::io::OutputStream> inner_;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
  int64_t bytes_ = 0;
};

class WriterImpl final : public ParquetReadingsWriter {
 public:
  // Writes `write_rel` of `fs`; Finish moves it to `final_rel` when they
  // differ. `owned` keeps a filesystem of the writer's own alive.
  WriterImpl(std::shared_ptr<arrow::fs::FileSystem> fs, std::unique_ptr<ArchiveFs> owned,
             std::string write_rel, std::string final_rel, ParquetOptions options)
      : fs_(std::move(fs)),
        owned_(std::move(owned)),
        write_rel_(std::move(write_rel)),
        final_rel_(std::move(final_rel)),
        options_(options) {}

  ~WriterImpl() override {
    if (finished_) return;
    // Abandoned: an S3 upload is aborted (nothing appears), a local file
    // removed. The Parquet writer's own destructor then fails to write its
    // footer into the aborted sink, quietly.
    if (sink_ != nullptr) (void)sink_->Abort();
    writer_.reset();
    (void)fs_->DeleteFile(write_rel_);
  }

  absl::Status Open(const ParquetFileInfo& info) {
    schema_ = ReadingsSchema(info);
    auto out = fs_->OpenOutputStream(write_rel_);
    RETURN_IF_ARROW(out.status(), absl::StrCat("create ", write_rel_));
    sink_ = std::make_shared<HashingOutputStream>(std::move(*out));
    parquet::WriterProperties::Builder props;
    props.compression(parquet::Compression::ZSTD)
        ->compression_level(options_.zstd_level)
        ->max_row_group_length(options_.row_group_rows)
        ->enable_write_page_index()
        ->created_by("telemetry export (Apache Arrow " ARROW_VERSION_STRING ")")
        ->disable_dictionary("ts")
        ->encoding("ts", parquet::Encoding::DELTA_BINARY_PACKED)
        ->disable_dictionary("value_double")
        ->encoding("value_double", parquet::Encoding::BYTE_STREAM_SPLIT);
    auto writer = parquet::arrow::FileWriter::Open(*schema_, arrow::default_memory_pool(), sink_,
                                                   props.build());
    RETURN_IF_ARROW(writer.status(), absl::StrCat("open parquet writer ", write_rel_));
    writer_ = std::move(*writer);
    // (The schema's metadata is not written to the Parquet footer unless the
    // whole Arrow schema is stored: the file's own key-value metadata is.)
    RETURN_IF_ARROW(writer_->AddKeyValueMetadata(schema_->metadata()), "file metadata");
    return absl::OkStatus();
  }

  absl::Status Append(const SeriesNames& series, const std::vector<RawRow>& readings) override {
    if (finished_) return absl::FailedPreconditionError("Append after Finish");
    if (readings.empty()) return absl::OkStatus();
    auto key = std::tie(series.device, series.sensor, series.unit);
    bool same = have_last_ && key == std::tie(last_.device, last_.sensor, last_.unit);
    if (have_last_ && !same && key < std::tie(last_.device, last_.sensor, last_.unit)) {
      return absl::FailedPreconditionError(absl::StrCat("series out of order: ", series.device, "/",
                                                        series.sensor, " after ", last_.device, "/",
                                                        last_.sensor));
    }
    if (!same) {
      last_ = series;
      have_last_ = true;
      last_ts_ = INT64_MIN;
      indexes_valid_ = false;
    }
    size_t i = 0;
    while (i < readings.size()) {
      if (!indexes_valid_) Index(series);
      size_t room = static_cast<size_t>(options_.row_group_rows - rows_);
      size_t n = std::min(room, readings.size() - i);
      for (size_t k = i; k < i + n; ++k) {
        const RawRow& r = readings[k];
        if (r.ts_ns <= last_ts_) {
          return absl::FailedPreconditionError(absl::StrCat(
              "readings of ", series.device, "/", series.sensor, " out of order at ", r.ts_ns));
        }
        last_ts_ = r.ts_ns;
        AddRow(r);
      }
      i += n;
      if (rows_ == options_.row_group_rows) {
        if (absl::Status st = FlushRowGroup(); !st.ok()) return st;
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<ParquetFileSummary> Finish() override {
    if (finished_) return absl::FailedPreconditionError("Finish called twice");
    if (rows_ > 0) {
      if (absl::Status st = FlushRowGroup(); !st.ok()) return st;
    }
    RETURN_IF_ARROW(writer_->Close(), absl::StrCat("close ", write_rel_));
    // (An S3 object appears here, when its upload completes.)
    if (!sink_->closed()) RETURN_IF_ARROW(sink_->Close(), absl::StrCat("close ", write_rel_));
    ParquetFileSummary summary;
    summary.rows = total_rows_;
    summary.row_groups = row_groups_;
    summary.bytes = sink_->bytes();
    auto sha = sink_->HexDigest();
    if (!sha.ok()) return sha.status();
    summary.sha256_hex = std::move(*sha);
    if (write_rel_ != final_rel_) {
      RETURN_IF_ARROW(fs_->Move(write_rel_, final_rel_),
                      absl::StrCat("rename ", write_rel_, " -> ", final_rel_));
    }
    finished_ = true;
    return summary;
  }

 private:
  // The current series' dictionary indexes in this row group.
  void Index(const SeriesNames& s) {
    device_ix_ = dicts_[0].Index(s.device);
    sensor_ix_ = dicts_[1].Index(s.sensor);
    unit_ix_ = dicts_[2].Index(s.unit);
    project_ix_ = dicts_[3].Index(s.project);
    labels_ix_ = dicts_[4].Index(s.labels_json);
    indexes_valid_ = true;
  }

  void AddRow(const RawRow& r) {
    ix_[0].push_back(device_ix_);
    ix_[1].push_back(sensor_ix_);
    ix_[2].push_back(unit_ix_);
    ix_[3].push_back(project_ix_);
    ix_[4].push_back(labels_ix_);
    ts_.push_back(r.ts_ns);
    d_.push_back(r.kind == ValueKind::kDouble ? r.d : 0);
    d_valid_.push_back(r.kind == ValueKind::kDouble);
    s_.push_back(r.kind == ValueKind::kString ? r.s : std::string());
    s_valid_.push_back(r.kind == ValueKind::kString);
    b_.push_back(r.kind == ValueKind::kBool && r.b);
    b_valid_.push_back(r.kind == ValueKind::kBool);
    status_.push_back(r.status);
    ++rows_;
  }

  // Finishes `builder` and writes it as the next column chunk.
  absl::Status WriteColumn(arrow::ArrayBuilder* builder, const char* name) {
    auto arr = builder->Finish();
    RETURN_IF_ARROW(arr.status(), name);
    RETURN_IF_ARROW(writer_->WriteColumnChunk(**arr), name);
    return absl::OkStatus();
  }

  absl::Status FlushRowGroup() {
    RETURN_IF_ARROW(writer_->NewRowGroup(), "new row group");
    for (int c = 0; c < 5; ++c) {
      arrow::Int32Builder ib;
      RETURN_IF_ARROW(ib.AppendValues(ix_[c]), "dictionary indexes");
      auto indices = ib.Finish();
      RETURN_IF_ARROW(indices.status(), "dictionary indexes");
      auto values = dicts_[c].Finish();
      RETURN_IF_ARROW(values.status(), "dictionary values");
      auto arr = arrow::DictionaryArray::FromArrays(schema_->field(c)->type(), *indices, *values);
      RETURN_IF_ARROW(arr.status(), "dictionary column");
      RETURN_IF_ARROW(writer_->WriteColumnChunk(**arr), schema_->field(c)->name());
    }
    arrow::TimestampBuilder ts(schema_->field(5)->type(), arrow::default_memory_pool());
    RETURN_IF_ARROW(ts.AppendValues(ts_), "ts");
    RETURN_IF_ERROR(WriteColumn(&ts, "ts"));
    arrow::DoubleBuilder d;
    RETURN_IF_ARROW(d.AppendValues(d_.data(), static_cast<int64_t>(d_.size()), d_valid_.data()),
                    "value_double");
    RETURN_IF_ERROR(WriteColumn(&d, "value_double"));
    arrow::StringBuilder str;
    RETURN_IF_ARROW(str.AppendValues(s_, s_valid_.data()), "value_string");
    RETURN_IF_ERROR(WriteColumn(&str, "value_string"));
    arrow::BooleanBuilder b;
    RETURN_IF_ARROW(b.AppendValues(b_.data(), static_cast<int64_t>(b_.size()), b_valid_.data()),
                    "value_bool");
    RETURN_IF_ERROR(WriteColumn(&b, "value_bool"));
    arrow::Int32Builder status;
    RETURN_IF_ARROW(status.AppendValues(status_), "status");
    RETURN_IF_ERROR(WriteColumn(&status, "status"));
    total_rows_ += rows_;
    ++row_groups_;
    rows_ = 0;
    for (auto& d : dicts_) d.Clear();
    for (auto& v : ix_) v.clear();
    indexes_valid_ = false;
    ts_.clear();
    d_.clear();
    d_valid_.clear();
    s_.clear();
    s_valid_.clear();
    b_.clear();
    b_valid_.clear();
    status_.clear();
    return absl::OkStatus();
  }

  std::shared_ptr<arrow::fs::FileSystem> fs_;
  std::unique_ptr<ArchiveFs> owned_;
  const std::string write_rel_, final_rel_;
  const ParquetOptions options_;
  std::shared_ptr<arrow::Schema> schema_;
  std::shared_ptr<HashingOutputStream> sink_;
  std::unique_ptr<parquet::arrow::FileWriter> writer_;
  bool finished_ = false;

  SeriesNames last_;
  bool have_last_ = false;
  int64_t last_ts_ = INT64_MIN;

  // The current row group.
  int64_t rows_ = 0;
  Dictionary dicts_[5];
  std::vector<int32_t> ix_[5];
  bool indexes_valid_ = false;
  int32_t device_ix_ = 0, sensor_ix_ = 0, unit_ix_ = 0, project_ix_ = 0, labels_ix_ = 0;
  std::vector<int64_t> ts_;
  std::vector<double> d_;
  std::vector<uint8_t> d_valid_;
  std::vector<std::string> s_;
  std::vector<uint8_t> s_valid_;
  std::vector<uint8_t> b_;
  std::vector<uint8_t> b_valid_;
  std::vector<int32_t> status_;

  int64_t total_rows_ = 0;
  int64_t row_groups_ = 0;
};

absl::StatusOr<std::unique_ptr<parquet::arrow::FileReader>> OpenReader(ArchiveFs& fs,
                                                                       const std::string& rel) {
  auto in = fs.impl().fs->OpenInputFile(rel);
  if (!in.ok()) return FromArrow(in.status(), absl::StrCat("open ", rel));
  parquet::arrow::FileReaderBuilder builder;
  RETURN_IF_ARROW(builder.Open(*in), absl::StrCat("read ", rel));
  // The string columns as written, dictionary-encoded: decoded into
  // DictionaryArrays (indexes + the distinct values), not a string per row,
  // which measured most of a cold read's time.
  parquet::ArrowReaderProperties props;
  const auto* schema = builder.raw_reader()->metadata()->schema();
  for (const char* name : {"device", "sensor", "unit", "project", "labels"}) {
    const int c = schema->ColumnIndex(name);
    if (c >= 0) props.set_read_dictionary(c, true);
  }
  auto reader = builder.memory_pool(arrow::default_memory_pool())->properties(props)->Build();
  if (!reader.ok()) return FromArrow(reader.status(), absl::StrCat("read ", rel));
  return std::move(*reader);
}

// A local path as (its directory's filesystem, its name).
absl::StatusOr<std::pair<std::unique_ptr<ArchiveFs>, std::string>> SplitLocal(
    const std::string& path) {
  const std::filesystem::path p(path);
  std::string dir = p.parent_path().string();
  if (dir.empty()) dir = ".";
  auto fs = LocalDirFs(dir);
  if (!fs.ok()) return fs.status();
  return std::make_pair(std::move(*fs), p.filename().string());
}

absl::StatusOr<std::unique_ptr<ParquetReadingsWriter>> NewWriter(
    std::unique_ptr<ArchiveFs> owned, ArchiveFs* fs, const std::string& write_rel,
    const std::string& final_rel, const ParquetFileInfo& info, const ParquetOptions& options) {
  if (options.row_group_rows <= 0) {
    return absl::InvalidArgumentError("row_group_rows must be positive");
  }
  auto w =
      std::make_unique<WriterImpl>(fs->impl().fs, std::move(owned), write_rel, final_rel, options);
  if (absl::Status st = w->Open(info); !st.ok()) return st;
  return std::unique_ptr<ParquetReadingsWriter>(std::move(w));
}

// A string column read back: plain utf8, or dictionary-encoded.
std::string StringAt(const arrow::Array& a, int64_t i) {
  if (a.type_id() == arrow::Type::DICTIONARY) {
    const auto& d = static_cast<const arrow::DictionaryArray&>(a);
    return StringAt(*d.dictionary(), d.GetValueIndex(i));
  }
  if (a.type_id() == arrow::Type::LARGE_STRING) {
    return std::string(static_cast<const arrow::LargeStringArray&>(a).GetView(i));
  }
  return std::string(static_cast<const arrow::StringArray&>(a).GetView(i));
}

// Decodes the rows of `table` (columns by name; project and labels only when
// `with_series`), those of `*device` only when given, into `emit`.
absl::Status DecodeReadings(const arrow::Table& table, const std::string& path, bool with_series,
                            const std::string* device,
                            const std::function<void(ArchivedReading&&)>& emit) {
  auto combined = table.CombineChunksToBatch();
  RETURN_IF_ARROW(combined.status(), absl::StrCat("combine ", path));
  const arrow::RecordBatch& b = **combined;
  static const char* kColumns[] = {"device",     "sensor", "unit",         "project",
                                   "labels",     "ts",     "value_double", "value_string",
                                   "value_bool", "status"};
  std::shared_ptr<arrow::Array> col[10];
  for (int c = 0; c < 10; ++c) {
    if (!with_series && (c == 3 || c == 4)) continue;
    col[c] = b.GetColumnByName(kColumns[c]);
    if (!col[c]) return absl::DataLossError(absl::StrCat(path, ": no column ", kColumns[c]));
  }
  const auto& ts = static_cast<const arrow::TimestampArray&>(*col[5]);
  const auto& d = static_cast<const arrow::DoubleArray&>(*col[6]);
  const auto& s = static_cast<const arrow::StringArray&>(*col[7]);
  const auto& bo = static_cast<const arrow::BooleanArray&>(*col[8]);
  const auto& st = static_cast<const arrow::Int32Array&>(*col[9]);
  // One device's rows: picked by dictionary index (the column is dictionary
  // encoded as written), not by building every row's name.
  int64_t device_index = -1;
  const arrow::DictionaryArray* device_dict = nullptr;
  if (device != nullptr && col[0]->type_id() == arrow::Type::DICTIONARY) {
    device_dict = static_cast<const arrow::DictionaryArray*>(col[0].get());
    const arrow::Array& values = *device_dict->dictionary();
    for (int64_t k = 0; k < values.length() && device_index < 0; ++k) {
      if (StringAt(values, k) == *device) device_index = k;
    }
    if (device_index < 0) return absl::OkStatus();
  }
  for (int64_t i = 0; i < b.num_rows(); ++i) {
    if (device_dict != nullptr && device_dict->GetValueIndex(i) != device_index) continue;
    ArchivedReading r;
    r.series.device = StringAt(*col[0], i);
    if (device != nullptr && r.series.device != *device) continue;
    r.series.sensor = StringAt(*col[1], i);
    r.series.unit = StringAt(*col[2], i);
    if (with_series) {
      r.series.project = StringAt(*col[3], i);
      r.series.labels_json = StringAt(*col[4], i);
    }
    r.reading.device = r.series.device;
    r.reading.sensor = r.series.sensor;
    r.reading.unit = r.series.unit;
    r.reading.ts_ns = ts.Value(i);
    r.reading.status = st.Value(i);
    if (d.IsValid(i)) {
      r.reading.kind = ValueKind::kDouble;
      r.reading.d = d.Value(i);
    } else if (s.IsValid(i)) {
      r.reading.kind = ValueKind::kString;
      r.reading.s = std::string(s.GetView(i));
    } else if (bo.IsValid(i)) {
      r.reading.kind = ValueKind::kBool;
      r.reading.b = bo.Value(i);
    } else {
      return absl::DataLossError(absl::StrCat(path, ": row ", i, " has no value"));
    }
    emit(std::move(r));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ParquetReadingsWriter>> ParquetReadingsWriter::Create(
    ArchiveFs* fs, const std::string& rel, const ParquetFileInfo& info,
    const ParquetOptions& options) {
  return NewWriter(nullptr, fs, rel, rel, info, options);
}

absl::StatusOr<std::unique_ptr<ParquetReadingsWriter>> ParquetReadingsWriter::Create(
    const std::string& path, const ParquetFileInfo& info, const ParquetOptions& options) {
  auto local = SplitLocal(path);
  if (!local.ok()) return local.status();
  ArchiveFs* fs = local->first.get();
  return NewWriter(std::move(local->first), fs, local->second + ".tmp", local->second, info,
                   options);
}

absl::StatusOr<std::vector<ArchivedReading>> ReadParquetReadings(const std::string& path) {
  auto local = SplitLocal(path);
  if (!local.ok()) return local.status();
  return ReadParquetReadings(*local->first, local->second);
}

absl::StatusOr<ParquetFileInfo> ReadParquetFileInfo(const std::string& path) {
  auto local = SplitLocal(path);
  if (!local.ok()) return local.status();
  return ReadParquetFileInfo(*local->first, local->second);
}

absl::StatusOr<std::vector<ArchivedReading>> ReadParquetReadings(ArchiveFs& fs,
                                                                 const std::string& path) {
  auto reader = OpenReader(fs, path);
  if (!reader.ok()) return reader.status();
  auto table = (*reader)->ReadTable();
  RETURN_IF_ARROW(table.status(), absl::StrCat("read ", path));
  std::vector<ArchivedReading> out;
  RETURN_IF_ERROR(DecodeReadings(**table, path, /*with_series=*/true, /*device=*/nullptr,
                                 [&](ArchivedReading&& r) { out.push_back(std::move(r)); }));
  return out;
}

absl::StatusOr<std::vector<ReadingRow>> ReadDeviceReadings(ArchiveFs& fs, const std::string& rel,
                                                           const std::string& device,
                                                           DeviceReadStats* stats) {
  auto reader = OpenReader(fs, rel);
  if (!reader.ok()) return reader.status();
  const auto meta = (*reader)->parquet_reader()->metadata();
  const int device_col = meta->schema()->ColumnIndex("device");
  if (device_col < 0) return absl::DataLossError(absl::StrCat(rel, ": no column device"));
  // Every column but project and labels (the series' attributes, not needed by reads).
  std::vector<int> columns;
  for (const char* name :
       {"device", "sensor", "unit", "ts", "value_double", "value_string", "value_bool", "status"}) {
    const int c = meta->schema()->ColumnIndex(name);
    if (c < 0) return absl::DataLossError(absl::StrCat(rel, ": no column ", name));
    columns.push_back(c);
  }
  std::vector<ReadingRow> out;
  for (int g = 0; g < meta->num_row_groups(); ++g) {
    // Rows are sorted by device: a row group whose device range excludes it is skipped.
    auto st = meta->RowGroup(g)->ColumnChunk(device_col)->statistics();
    if (st && st->HasMinMax()) {
      const auto* typed = dynamic_cast<const parquet::ByteArrayStatistics*>(st.get());
      if (typed != nullptr) {
        auto view = [](const parquet::ByteArray& b) {
          return absl::string_view(reinterpret_cast<const char*>(b.ptr), b.len);
        };
        if (device < view(typed->min()) || device > view(typed->max())) {
          if (stats) ++stats->row_groups_skipped;
          continue;
        }
      }
    }
    if (stats) ++stats->row_groups_read;
    auto table = (*reader)->ReadRowGroup(g, columns);
    RETURN_IF_ARROW(table.status(), absl::StrCat("read ", rel, " row group ", g));
    RETURN_IF_ERROR(
        DecodeReadings(**table, rel, /*with_series=*/false, &device,
                       [&](ArchivedReading&& r) { out.push_back(std::move(r.reading)); }));
  }
  return out;
}

absl::StatusOr<ParquetFileInfo> ReadParquetFileInfo(ArchiveFs& fs, const std::string& path) {
  auto reader = OpenReader(fs, path);
  if (!reader.ok()) return reader.status();
  auto kv = (*reader)->parquet_reader()->metadata()->key_value_metadata();
  if (!kv) return absl::InvalidArgumentError(absl::StrCat(path, ": no key-value metadata"));
  auto format = kv->Get(kFormatKey);
  if (!format.ok() || *format != kFormatVersion) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a telemetry archive file"));
  }
  ParquetFileInfo info;
  auto tenant = kv->Get(kTenantKey);
  auto hour = kv->Get(kHourKey);
  auto version = kv->Get(kVersionKey);
  if (!tenant.ok() || !hour.ok() || !version.ok() || !absl::SimpleAtoi(*tenant, &info.tenant_id) ||
      !absl::SimpleAtoi(*hour, &info.hour_start_ns) ||
      !absl::SimpleAtoi(*version, &info.export_version)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": bad telemetry metadata"));
  }
  return info;
}

}  // namespace telemetry::archive
