#include "dax/persist.h"

#include <fcntl.h>
#include <libpmem2.h>

namespace daxref::dax {

PersistFn ProbePersist(int pool_fd) {
  pmem2_source* src = nullptr;
  pmem2_config* cfg = nullptr;
  pmem2_map* map = nullptr;
  PersistFn fn = nullptr;
  size_t align = 0;
  const int fl = fcntl(pool_fd, F_GETFL);
  if (fl >= 0 && pmem2_source_from_fd(&src, pool_fd) == 0 &&
      pmem2_source_alignment(src, &align) == 0 && pmem2_config_new(&cfg) == 0 &&
      pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE) == 0 &&
      pmem2_config_set_length(cfg, align) == 0 &&
      ((fl & O_ACCMODE) == O_RDWR || pmem2_config_set_protection(cfg, PMEM2_PROT_READ) == 0) &&
      pmem2_map_new(&map, cfg, src) == 0) {
    if (pmem2_map_get_store_granularity(map) != PMEM2_GRANULARITY_PAGE)
      fn = pmem2_get_persist_fn(map);
    pmem2_map_delete(&map);
  }
  if (cfg != nullptr) pmem2_config_delete(&cfg);
  if (src != nullptr) pmem2_source_delete(&src);
  return fn;
}

}  // namespace daxref::dax
