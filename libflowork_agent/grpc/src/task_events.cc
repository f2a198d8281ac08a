#include "task_events.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "flowork/agent/task_state.h"
#include "flowork/agent/v1/effect.pb.h"
#include "google/protobuf/util/json_util.h"

namespace flowork::agent::internal {
namespace {

namespace protobuf = google::protobuf;

// A message as the JSON value its proto3 JSON mapping gives.
protobuf::Value AsValue(const protobuf::Message& message) {
  std::string json;
  protobuf::Value value;
  if (!protobuf::util::MessageToJsonString(message, &json).ok() ||
      !protobuf::util::JsonStringToMessage(json, &value).ok()) {
    value.set_string_value("<unprintable>");
  }
  return value;
}

protobuf::Value Text(const std::string& text) {
  protobuf::Value value;
  value.set_string_value(text);
  return value;
}

protobuf::Value Number(double number) {
  protobuf::Value value;
  value.set_number_value(number);
  return value;
}

v1::TaskEvent Envelope(const v1::Task& task, uint64_t id, std::string type,
                       const protobuf::Timestamp& time) {
  v1::TaskEvent event;
  event.set_specversion("1.0");
  event.set_id(absl::StrCat(id));
  event.set_source(absl::StrCat("/v1/tasks/", task.id()));
  event.set_type(std::move(type));
  *event.mutable_time() = time;
  event.set_subject(task.id());
  event.set_datacontenttype("application/json");
  return event;
}

std::string StepType(const v1::StepRecord& step, const char* what) {
  return absl::StrCat("dev.flowork.task.", step.kind() == "tools" ? "tool_calls" : "step", ".",
                      what);
}

}  // namespace

uint64_t JournalSeqFor(uint64_t after) { return after == 0 ? 0 : (after - 1) / 2; }

uint64_t FinishedEventId(const v1::Task& task) { return 2 * task.step_count() + 2; }

std::vector<v1::TaskEvent> TaskEvents(const v1::Task& task,
                                      const std::vector<v1::StepRecord>& steps, uint64_t after) {
  std::vector<v1::TaskEvent> events;
  if (after < 1) {
    v1::TaskEvent created = Envelope(task, 1, "dev.flowork.task.created", task.create_time());
    auto& data = *created.mutable_data()->mutable_struct_value()->mutable_fields();
    data["agent"] = Text(task.agent());
    data["tenant"] = Text(task.tenant());
    if (task.has_input()) data["input"] = task.input();
    protobuf::Struct labels;
    for (const auto& [key, value] : task.labels()) (*labels.mutable_fields())[key] = Text(value);
    *data["labels"].mutable_struct_value() = std::move(labels);
    events.push_back(std::move(created));
  }
  for (const v1::StepRecord& step : steps) {
    const uint64_t started_id = 2 * step.seq();
    if (started_id > after) {
      v1::TaskEvent started =
          Envelope(task, started_id, StepType(step, "started"), step.start_time());
      auto& data = *started.mutable_data()->mutable_struct_value()->mutable_fields();
      data["seq"] = Number(static_cast<double>(step.seq()));
      data["kind"] = Text(step.kind());
      v1::Effect effect;
      if (effect.ParseFromString(step.input())) data["effect"] = AsValue(effect);
      events.push_back(std::move(started));
    }
    const bool ended = step.status() == v1::StepRecord::STATUS_COMPLETED ||
                       step.status() == v1::StepRecord::STATUS_FAILED;
    if (ended && started_id + 1 > after) {
      const bool failed = step.status() == v1::StepRecord::STATUS_FAILED;
      v1::TaskEvent done = Envelope(
          task, started_id + 1, StepType(step, failed ? "failed" : "completed"), step.end_time());
      auto& data = *done.mutable_data()->mutable_struct_value()->mutable_fields();
      data["seq"] = Number(static_cast<double>(step.seq()));
      data["kind"] = Text(step.kind());
      data["attempt"] = Number(step.attempt());
      v1::EffectResult result;
      if (!step.output().empty() && result.ParseFromString(step.output())) {
        data["result"] = AsValue(result);
      }
      if (!step.error().empty()) data["error"] = Text(step.error());
      events.push_back(std::move(done));
    }
  }
  if (IsFinal(task.state()) && FinishedEventId(task) > after) {
    v1::TaskEvent finished =
        Envelope(task, FinishedEventId(task), "dev.flowork.task.finished", task.update_time());
    auto& data = *finished.mutable_data()->mutable_struct_value()->mutable_fields();
    data["state"] = Text(v1::TaskState_Name(task.state()));
    if (task.has_output()) data["output"] = task.output();
    if (!task.error().empty()) data["error"] = Text(task.error());
    events.push_back(std::move(finished));
  }
  return events;
}

}  // namespace flowork::agent::internal
