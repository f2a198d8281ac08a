#include "flowork/router/grpc/router_service.h"

namespace flowork::router {

grpc::ServerUnaryReactor* RouterServiceImpl::ListModels(grpc::CallbackServerContext* context,
                                                        const v1::ListModelsRequest* request,
                                                        v1::ListModelsResponse* response) {
  *response = policy_.Current()->catalog().List(*request);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RouterServiceImpl::ExplainRoute(grpc::CallbackServerContext* context,
                                                          const v1::ExplainRouteRequest* request,
                                                          v1::ExplainRouteResponse* response) {
  RequestView view;
  view.model = request->model();
  view.stream = request->stream();
  view.max_tokens = request->max_tokens();
  view.estimated_prompt_tokens = request->estimated_prompt_tokens();
  view.required_capabilities.assign(request->capabilities().begin(), request->capabilities().end());
  view.header_zones.assign(request->zones().begin(), request->zones().end());
  view.affinity_key = request->affinity_key();
  if (request->has_seed()) view.seed = request->seed();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<AttemptPlan> plan = policy_.Explain(std::move(view));
  if (!plan.ok()) {
    reactor->Finish(grpc::Status(static_cast<grpc::StatusCode>(plan.status().code()),
                                 std::string(plan.status().message())));
    return reactor;
  }
  response->set_target(plan->target);
  response->set_objective(plan->objective);
  response->set_seed(plan->seed);
  for (const Endpoint& e : plan->attempts) {
    response->add_attempts(e.model->name() + "@" + e.provider->name());
  }
  for (const CandidateDecision& d : plan->decisions) {
    v1::CandidateVerdict& verdict = *response->add_candidates();
    verdict.set_model(d.endpoint.model->name());
    verdict.set_provider(d.endpoint.provider->name());
    verdict.set_zone(d.endpoint.provider->zone());
    verdict.set_kept(d.kept());
    verdict.set_reason(d.Explain());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace flowork::router
