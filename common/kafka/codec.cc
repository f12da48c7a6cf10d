#include "common/kafka/codec.h"

#include <deque>
#include <iterator>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace telemetry {

using telemetry::v1::Reading;
using telemetry::v1::ReadingBatch;
using telemetry::v1::SeriesBlock;

int32_t PartitionFor(int64_t tenant_id, const std::string& device, int32_t partitions) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ULL;
  };
  std::string t = std::to_string(tenant_id);
  for (char c : t) mix(static_cast<unsigned char>(c));
  mix('/');
  for (char c : device) mix(static_cast<unsigned char>(c));
  return static_cast<int32_t>(h % static_cast<uint64_t>(partitions));
}

std::string BatchKey(int64_t tenant_id, int32_t partition) {
  return absl::StrCat(tenant_id, "/", partition);
}

namespace {

std::string BlockKey(const Reading& r) {
  std::string key = absl::StrCat(r.device_id(), "\x1f", r.sensor(), "\x1f", r.unit(), "\x1f",
                                 static_cast<int>(r.value_case()));
  if (!r.labels().empty()) {
    std::map<std::string, std::string> sorted(r.labels().begin(), r.labels().end());
    for (const auto& [k, v] : sorted) absl::StrAppend(&key, "\x1f", k, "=", v);
  }
  return key;
}

void JsonString(std::string* out, const std::string& s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

}  // namespace

std::string LabelsJson(const google::protobuf::Map<std::string, std::string>& labels) {
  if (labels.empty()) return "";
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : sorted) {
    if (!first) out.push_back(',');
    first = false;
    JsonString(&out, k);
    out.push_back(':');
    JsonString(&out, v);
  }
  out.push_back('}');
  return out;
}

namespace {

// Upper bounds of the encoded size (protobuf wire bytes) of a reading in a
// block, and of a block without its readings.
size_t ReadingBytes(const Reading& r) {
  size_t n = 10 + 10;  // timestamp delta, status code (varints, their tags are packed)
  switch (r.value_case()) {
    case Reading::kDoubleValue:
      return n + 8;
    case Reading::kStringValue:
      return n + r.string_value().size() + 6;
    default:
      return n + 1;
  }
}

size_t BlockBytes(const Reading& r) {
  size_t n = 32 + r.device_id().size() + r.sensor().size() + r.unit().size();
  for (const auto& [k, v] : r.labels()) n += k.size() + v.size() + 12;
  return n;
}

}  // namespace

std::vector<std::pair<int32_t, ReadingBatch>> EncodeReadings(
    int64_t tenant_id, const std::vector<const Reading*>& readings, int32_t partitions,
    int64_t now_ns, size_t target_bytes) {
  // A deque: blocks point into its batches while they fill.
  std::deque<std::pair<int32_t, ReadingBatch>> out;
  struct PartitionState {
    ReadingBatch* batch = nullptr;  // the one being filled
    size_t bytes = 0;
    int generation = 0;  // bumped at every new batch
  };
  struct BlockState {
    SeriesBlock* block;
    int generation;
    int64_t last_ts;
    bool any_status;
  };
  absl::flat_hash_map<int32_t, PartitionState> parts;
  absl::flat_hash_map<std::string, BlockState> blocks;
  absl::flat_hash_map<std::string, int32_t> device_partition;
  for (const Reading* r : readings) {
    auto dp = device_partition.find(r->device_id());
    int32_t p;
    if (dp == device_partition.end()) {
      p = PartitionFor(tenant_id, r->device_id(), partitions);
      device_partition.emplace(r->device_id(), p);
    } else {
      p = dp->second;
    }
    PartitionState& ps = parts[p];
    const size_t need = ReadingBytes(*r);
    if (ps.batch == nullptr || (ps.bytes + need > target_bytes && ps.bytes > 16)) {
      out.emplace_back(p, ReadingBatch());
      ps.batch = &out.back().second;
      ps.batch->set_tenant_id(tenant_id);
      ps.batch->set_produced_at_ns(now_ns);
      ps.bytes = 16;
      ++ps.generation;
    }
    auto [it, fresh] = blocks.try_emplace(BlockKey(*r), BlockState{nullptr, 0, 0, false});
    BlockState& st = it->second;
    if (fresh || st.generation != ps.generation) {
      // The series' first reading in this message: a block of its own.
      st = BlockState{ps.batch->add_series(), ps.generation, 0, false};
      st.block->set_device_id(r->device_id());
      st.block->set_sensor(r->sensor());
      st.block->set_unit(r->unit());
      if (!r->labels().empty()) *st.block->mutable_labels() = r->labels();
      ps.bytes += BlockBytes(*r);
    }
    ps.bytes += need;
    SeriesBlock* b = st.block;
    b->add_timestamp_delta_ns(r->timestamp_ns() - st.last_ts);
    st.last_ts = r->timestamp_ns();
    switch (r->value_case()) {
      case Reading::kDoubleValue:
        b->add_double_values(r->double_value());
        break;
      case Reading::kStringValue:
        b->add_string_values(r->string_value());
        break;
      case Reading::kBoolValue:
        b->add_bool_values(r->bool_value());
        break;
      case Reading::VALUE_NOT_SET:
        break;  // rejected by validation before
    }
    if (r->status_code() != 0 && !st.any_status) {
      // Back-fill zeros for the readings before the first status code.
      st.any_status = true;
      for (int i = 0; i + 1 < b->timestamp_delta_ns_size(); ++i) b->add_status_codes(0);
    }
    if (st.any_status) b->add_status_codes(r->status_code());
  }
  return {std::make_move_iterator(out.begin()), std::make_move_iterator(out.end())};
}

absl::StatusOr<std::vector<DecodedReading>> DecodeBatch(const ReadingBatch& batch) {
  if (batch.tenant_id() <= 0) return absl::InvalidArgumentError("batch has no tenant_id");
  std::vector<DecodedReading> out;
  for (const SeriesBlock& b : batch.series()) {
    const int n = b.timestamp_delta_ns_size();
    int filled =
        (b.double_values_size() > 0) + (b.string_values_size() > 0) + (b.bool_values_size() > 0);
    if (n == 0) continue;
    if (filled != 1) {
      return absl::InvalidArgumentError(absl::StrCat("block ", b.device_id(), "/", b.sensor(),
                                                     " must fill exactly one value column"));
    }
    int values = b.double_values_size() + b.string_values_size() + b.bool_values_size();
    if (values != n || (b.status_codes_size() != 0 && b.status_codes_size() != n)) {
      return absl::InvalidArgumentError(
          absl::StrCat("block ", b.device_id(), "/", b.sensor(), ": column lengths differ"));
    }
    if (b.device_id().empty() || b.sensor().empty()) {
      return absl::InvalidArgumentError("block without device or sensor");
    }
    int64_t ts = 0;
    for (int i = 0; i < n; ++i) {
      ts += b.timestamp_delta_ns(i);
      DecodedReading d;
      d.block = &b;
      d.row.ts_ns = ts;
      if (b.double_values_size()) {
        d.row.kind = ValueKind::kDouble;
        d.row.d = b.double_values(i);
      } else if (b.string_values_size()) {
        d.row.kind = ValueKind::kString;
        d.row.s = b.string_values(i);
      } else {
        d.row.kind = ValueKind::kBool;
        d.row.b = b.bool_values(i);
      }
      d.row.status = b.status_codes_size() ? b.status_codes(i) : 0;
      out.push_back(std::move(d));
    }
  }
  return out;
}

}  // namespace telemetry
