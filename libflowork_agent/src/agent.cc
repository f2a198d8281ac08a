// The default session turn of an agent.

#include "flowork/agent/agent.h"

#include "google/protobuf/util/json_util.h"

namespace flowork::agent {
namespace {

std::string AsText(const google::protobuf::Value& value) {
  if (value.has_string_value()) return value.string_value();
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(value, &out).ok()) return "null";
  return out;
}

}  // namespace

SessionTurn DefaultSessionTurn(const v1::Task& task, const google::protobuf::Value& output) {
  SessionTurn turn;
  v1::ChatMessage& user = turn.messages.emplace_back();
  user.set_role("user");
  user.set_content(task.has_input() ? AsText(task.input()) : task.input_bytes());
  v1::ChatMessage& assistant = turn.messages.emplace_back();
  assistant.set_role("assistant");
  assistant.set_content(AsText(output));
  return turn;
}

}  // namespace flowork::agent
