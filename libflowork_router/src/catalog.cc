#include "flowork/router/catalog.h"

#include <algorithm>

namespace flowork::router {

Catalog::Catalog(const v1::RouterConfig& config) {
  for (const v1::Model& model : config.models()) {
    v1::ModelEntry& entry = *all_.add_models();
    entry.set_id(model.name());
    entry.set_kind(v1::ModelEntry::KIND_MODEL);
    entry.set_provider(model.provider());
    *entry.mutable_capabilities() = model.capabilities();
    entry.set_context_window(model.context_window());
  }
  for (const v1::Route& route : config.routes()) {
    v1::ModelEntry& entry = *all_.add_models();
    entry.set_id(route.name());
    entry.set_kind(v1::ModelEntry::KIND_ROUTE);
    *entry.mutable_capabilities() = route.require().capabilities();
    *entry.mutable_candidates() = route.candidates();
  }
}

v1::ListModelsResponse Catalog::List(const v1::ListModelsRequest& request) const {
  if (request.capabilities().empty()) return all_;
  v1::ListModelsResponse result;
  for (const v1::ModelEntry& entry : all_.models()) {
    const bool has_all = std::all_of(
        request.capabilities().begin(), request.capabilities().end(), [&](const std::string& c) {
          return std::find(entry.capabilities().begin(), entry.capabilities().end(), c) !=
                 entry.capabilities().end();
        });
    if (has_all) *result.add_models() = entry;
  }
  return result;
}

}  // namespace flowork::router
