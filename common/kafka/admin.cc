// EnsureTopics / DeleteTopics on librdkafka's Admin API.
#include "common/kafka/admin.h"

#include <librdkafka/rdkafka.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace telemetry {
namespace {

struct RkDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};
struct OptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* o) const { rd_kafka_AdminOptions_destroy(o); }
};
using Rk = std::unique_ptr<rd_kafka_t, RkDeleter>;
using Queue = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using Event = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using AdminOptions = std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter>;

absl::StatusOr<Rk> AdminClient(const KafkaOptions& o) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  std::map<std::string, std::string> props = {{"bootstrap.servers", o.brokers},
                                              {"client.id", o.client_id + "-admin"}};
  for (const auto& [k, v] : o.extra) props[k] = v;
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(absl::StrCat("kafka config ", k, "=", v, ": ", err));
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(absl::StrCat("kafka admin client: ", err));
  }
  return Rk(rk);
}

AdminOptions Options(rd_kafka_t* rk, rd_kafka_admin_op_t op, int timeout_ms) {
  AdminOptions opts(rd_kafka_AdminOptions_new(rk, op));
  char err[256];
  rd_kafka_AdminOptions_set_request_timeout(opts.get(), timeout_ms, err, sizeof(err));
  if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS || op == RD_KAFKA_ADMIN_OP_DELETETOPICS) {
    rd_kafka_AdminOptions_set_operation_timeout(opts.get(), timeout_ms, err, sizeof(err));
  }
  return opts;
}

// Waits for the result event of one admin call.
absl::StatusOr<Event> Await(rd_kafka_queue_t* q, rd_kafka_event_type_t type, int timeout_ms,
                            absl::string_view what) {
  Event ev(rd_kafka_queue_poll(q, timeout_ms + 2000));
  if (!ev) return absl::DeadlineExceededError(absl::StrCat(what, ": no answer from Kafka"));
  if (rd_kafka_event_type(ev.get()) != type) {
    return absl::InternalError(
        absl::StrCat(what, ": unexpected event ", rd_kafka_event_name(ev.get())));
  }
  if (rd_kafka_event_error(ev.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat(what, ": ", rd_kafka_event_error_string(ev.get())));
  }
  return ev;
}

absl::StatusOr<int32_t> PartitionsOf(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
  rd_kafka_topic_destroy(t);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat("metadata of ", topic, ": ", rd_kafka_err2str(err)));
  }
  int32_t n = md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR
                  ? md->topics[0].partition_cnt
                  : -1;
  rd_kafka_metadata_destroy(md);
  if (n < 0) return absl::NotFoundError(absl::StrCat("topic ", topic, " not found"));
  return n;
}

absl::Status AlterConfigs(rd_kafka_t* rk, rd_kafka_queue_t* q, const TopicSpec& spec,
                          int timeout_ms) {
  rd_kafka_ConfigResource_t* res =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, spec.name.c_str());
  for (const auto& [k, v] : spec.config)
    rd_kafka_ConfigResource_set_config(res, k.c_str(), v.c_str());
  AdminOptions opts = Options(rk, RD_KAFKA_ADMIN_OP_ALTERCONFIGS, timeout_ms);
  rd_kafka_AlterConfigs(rk, &res, 1, opts.get(), q);
  rd_kafka_ConfigResource_destroy(res);
  auto ev =
      Await(q, RD_KAFKA_EVENT_ALTERCONFIGS_RESULT, timeout_ms, "alter configs of " + spec.name);
  if (!ev.ok()) return ev.status();
  size_t n = 0;
  const rd_kafka_ConfigResource_t** out =
      rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev->get()), &n);
  for (size_t i = 0; i < n; ++i) {
    if (rd_kafka_ConfigResource_error(out[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return absl::InvalidArgumentError(absl::StrCat("configs of ", spec.name, ": ",
                                                     rd_kafka_ConfigResource_error_string(out[i])));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<TopicOutcome>> EnsureTopics(const KafkaOptions& options,
                                                       const std::vector<TopicSpec>& topics,
                                                       int timeout_ms) {
  auto rk = AdminClient(options);
  if (!rk.ok()) return rk.status();
  Queue q(rd_kafka_queue_new(rk->get()));
  std::vector<rd_kafka_NewTopic_t*> nts;
  for (const auto& spec : topics) {
    char err[512];
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(spec.name.c_str(), spec.partitions,
                                                    spec.replication_factor, err, sizeof(err));
    if (nt == nullptr) {
      rd_kafka_NewTopic_destroy_array(nts.data(), nts.size());
      return absl::InvalidArgumentError(absl::StrCat("topic ", spec.name, ": ", err));
    }
    for (const auto& [k, v] : spec.config) rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
    nts.push_back(nt);
  }
  AdminOptions opts = Options(rk->get(), RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout_ms);
  rd_kafka_CreateTopics(rk->get(), nts.data(), nts.size(), opts.get(), q.get());
  rd_kafka_NewTopic_destroy_array(nts.data(), nts.size());
  auto ev = Await(q.get(), RD_KAFKA_EVENT_CREATETOPICS_RESULT, timeout_ms, "create topics");
  if (!ev.ok()) return ev.status();
  std::map<std::string, rd_kafka_resp_err_t> errors;
  std::map<std::string, std::string> messages;
  size_t n = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev->get()), &n);
  for (size_t i = 0; i < n; ++i) {
    const char* name = rd_kafka_topic_result_name(results[i]);
    errors[name] = rd_kafka_topic_result_error(results[i]);
    const char* msg = rd_kafka_topic_result_error_string(results[i]);
    messages[name] = msg != nullptr ? msg : rd_kafka_err2str(errors[name]);
  }
  std::vector<TopicOutcome> out;
  for (const auto& spec : topics) {
    TopicOutcome o;
    o.name = spec.name;
    auto it = errors.find(spec.name);
    if (it == errors.end()) return absl::InternalError("no result for topic " + spec.name);
    if (it->second == RD_KAFKA_RESP_ERR_NO_ERROR) {
      o.created = true;
    } else if (it->second == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      RETURN_IF_ERROR(AlterConfigs(rk->get(), q.get(), spec, timeout_ms));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("create topic ", spec.name, ": ", messages[spec.name]));
    }
    // A topic just created may take a moment to show in the metadata.
    absl::StatusOr<int32_t> have = absl::NotFoundError("");
    for (int i = 0; i < 50; ++i) {
      have = PartitionsOf(rk->get(), spec.name, timeout_ms);
      if (have.ok() && *have > 0) break;
      rd_kafka_poll(rk->get(), 100);
    }
    if (!have.ok()) return have.status();
    o.partitions = *have;
    if (*have != spec.partitions) {
      o.note = absl::StrCat("has ", *have, " partitions, ", spec.partitions,
                            " asked: kept (a new count moves devices to other partitions;"
                            " re-create the topic to change it)");
    }
    out.push_back(std::move(o));
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> DescribeTopicConfig(const KafkaOptions& options,
                                                                       const std::string& topic,
                                                                       int timeout_ms) {
  auto rk = AdminClient(options);
  if (!rk.ok()) return rk.status();
  Queue q(rd_kafka_queue_new(rk->get()));
  rd_kafka_ConfigResource_t* res =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  AdminOptions opts = Options(rk->get(), RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, timeout_ms);
  rd_kafka_DescribeConfigs(rk->get(), &res, 1, opts.get(), q.get());
  rd_kafka_ConfigResource_destroy(res);
  auto ev = Await(q.get(), RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, timeout_ms,
                  "describe configs of " + topic);
  if (!ev.ok()) return ev.status();
  size_t n = 0;
  const rd_kafka_ConfigResource_t** out = rd_kafka_DescribeConfigs_result_resources(
      rd_kafka_event_DescribeConfigs_result(ev->get()), &n);
  std::map<std::string, std::string> configs;
  for (size_t i = 0; i < n; ++i) {
    if (rd_kafka_ConfigResource_error(out[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return absl::NotFoundError(
          absl::StrCat("configs of ", topic, ": ", rd_kafka_ConfigResource_error_string(out[i])));
    }
    size_t cnt = 0;
    const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(out[i], &cnt);
    for (size_t j = 0; j < cnt; ++j) {
      const char* v = rd_kafka_ConfigEntry_value(entries[j]);
      configs[rd_kafka_ConfigEntry_name(entries[j])] = v != nullptr ? v : "";
    }
  }
  return configs;
}

absl::Status DeleteTopics(const KafkaOptions& options, const std::vector<std::string>& names,
                          int timeout_ms) {
  auto rk = AdminClient(options);
  if (!rk.ok()) return rk.status();
  Queue q(rd_kafka_queue_new(rk->get()));
  std::vector<rd_kafka_DeleteTopic_t*> dts;
  for (const auto& name : names) dts.push_back(rd_kafka_DeleteTopic_new(name.c_str()));
  AdminOptions opts = Options(rk->get(), RD_KAFKA_ADMIN_OP_DELETETOPICS, timeout_ms);
  rd_kafka_DeleteTopics(rk->get(), dts.data(), dts.size(), opts.get(), q.get());
  rd_kafka_DeleteTopic_destroy_array(dts.data(), dts.size());
  auto ev = Await(q.get(), RD_KAFKA_EVENT_DELETETOPICS_RESULT, timeout_ms, "delete topics");
  if (!ev.ok()) return ev.status();
  size_t n = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev->get()), &n);
  for (size_t i = 0; i < n; ++i) {
    rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      return absl::UnavailableError(absl::StrCat(
          "delete topic ", rd_kafka_topic_result_name(results[i]), ": ", rd_kafka_err2str(err)));
    }
  }
  return absl::OkStatus();
}

}  // namespace telemetry
