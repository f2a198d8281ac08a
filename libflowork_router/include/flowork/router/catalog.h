#ifndef FLOWORK_ROUTER_CATALOG_H_
#define FLOWORK_ROUTER_CATALOG_H_

#include "flowork/router/v1/config.pb.h"
#include "flowork/router/v1/router.pb.h"

namespace flowork::router {

// The ids a client may ask for — concrete models and routes — of one config
// snapshot. Immutable after construction; thread-safe.
class Catalog {
 public:
  explicit Catalog(const v1::RouterConfig& config);

  // Models then routes, each in config order, keeping only entries whose
  // capabilities include every requested one.
  v1::ListModelsResponse List(const v1::ListModelsRequest& request) const;

 private:
  v1::ListModelsResponse all_;
};

}  // namespace flowork::router

#endif  // FLOWORK_ROUTER_CATALOG_H_
