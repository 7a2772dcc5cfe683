// PyTorch's distributed engine (c10d) for data-parallel training, which tch 0.24 does not expose:
// a TCPStore rendezvous, a Gloo process group (CPU tensors; NCCL is not built yet), the collectives
// the trainer needs (broadcast, all-reduce, all-gather, barrier), and DDP's Reducer, which
// all-reduces gradient buckets while backward is still running.
//
// The torch wheel ships no gloo headers, and ProcessGroupGloo.hpp includes them; the class is
// declared here from the symbols libtorch_cpu.so exports instead (its constructor, and
// Options::create_default). The real object is constructed inside a larger allocation, so only
// its base (Backend, whose header the wheel ships) and those two symbols are relied on;
// tests/dist.rs exercises them, so a libtorch that changes them fails there.
// Each function returns NULL on success or a malloc'd error message (freed by ft_free_error).
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace c10d {
class ProcessGroupGloo : public Backend {
 public:
  struct Options : public Backend::Options {
    static c10::intrusive_ptr<Options> create_default(std::chrono::milliseconds timeout);
    Options() = delete;
  };
  ProcessGroupGloo(const c10::intrusive_ptr<Store> &store, int rank, int size, c10::intrusive_ptr<Options> options);

 private:
  // Room for the real object (a few hundred bytes in torch 2.11).
  char room_[16384];
};
}  // namespace c10d

#include "guarded.h"

struct FtGroup {
  c10::intrusive_ptr<c10d::ProcessGroup> group;
};

struct FtReducer {
  std::unique_ptr<c10d::Reducer> reducer;
};

extern "C" {

// Joins the job: rank 0 hosts the TCPStore at host:port unless an agent hosts it
// (`agent_store`, torchrun's TORCHELASTIC_USE_AGENT_STORE), every rank connects, and a Gloo
// process group over it serves CPU tensors.
char *ft_dist_init(const char *host, int port, int rank, int world_size, bool agent_store, const char *prefix, int64_t timeout_ms, FtGroup **out) {
  GUARDED({
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(port);
    o.isServer = rank == 0 && !agent_store;
    o.numWorkers = world_size;
    o.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), o);
    // Our keys go under the prefix torch.distributed's default group uses (with torchrun's agent
    // store, one per restart attempt, since the store outlives the workers).
    auto store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), c10::static_intrusive_pointer_cast<c10d::Store>(tcp));
    auto st = c10::static_intrusive_pointer_cast<c10d::Store>(store);
    auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(st, rank, world_size, c10d::ProcessGroupGloo::Options::create_default(timeout));
    auto group = c10::make_intrusive<c10d::ProcessGroup>(st, rank, world_size);
    auto backend = c10::static_intrusive_pointer_cast<c10d::Backend>(gloo);
    group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, backend);
    group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
    *out = new FtGroup{group};
  })
}

void ft_dist_free(FtGroup *g) { delete g; }

char *ft_dist_broadcast(FtGroup *g, tensor *ts, size_t n, int root) {
  GUARDED({
    // One collective a tensor: a list in one call means one tensor per device to c10d.
    c10d::BroadcastOptions o;
    o.rootRank = root;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (size_t i = 0; i < n; i++) {
      std::vector<at::Tensor> one = {*ts[i]};
      works.push_back(g->group->broadcast(one, o));
    }
    for (auto &w : works) w->wait();
  })
}

// Sums in place across ranks.
char *ft_dist_allreduce_sum(FtGroup *g, tensor *ts, size_t n) {
  GUARDED({
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (size_t i = 0; i < n; i++) {
      std::vector<at::Tensor> one = {*ts[i]};
      works.push_back(g->group->allreduce(one));
    }
    for (auto &w : works) w->wait();
  })
}

// Every rank's `t` (same shape on each), stacked along a new first dimension in rank order.
char *ft_dist_allgather(FtGroup *g, tensor t, tensor *out) {
  GUARDED({
    int world = g->group->getSize();
    std::vector<at::Tensor> parts;
    for (int r = 0; r < world; r++) parts.push_back(at::empty_like(*t));
    std::vector<std::vector<at::Tensor>> outs = {parts};
    std::vector<at::Tensor> in = {*t};
    g->group->allgather(outs, in)->wait();
    *out = new at::Tensor(at::stack(outs[0], 0));
  })
}

char *ft_dist_barrier(FtGroup *g) { GUARDED(g->group->barrier()->wait()) }

// DDP's Reducer over `params` (in registration order), buckets as DistributedDataParallel makes
// them: compute_bucket_assignment_by_size with a first bucket of `first_bucket_bytes` and
// `bucket_bytes` after it, in reverse order (gradients become ready from the last layer back).
char *ft_reducer_new(FtGroup *g, tensor *ps, size_t n, int64_t first_bucket_bytes, int64_t bucket_bytes, bool find_unused, FtReducer **out) {
  GUARDED({
    auto params = list(ps, n);
    std::vector<bool> sparse(n, false);
    auto assignment = c10d::compute_bucket_assignment_by_size(params, {static_cast<size_t>(first_bucket_bytes), static_cast<size_t>(bucket_bytes)}, sparse);
    auto buckets = std::get<0>(assignment);
    std::reverse(buckets.begin(), buckets.end());
    auto r = std::make_unique<c10d::Reducer>(params, buckets, g->group, sparse, bucket_bytes, find_unused, false, std::unordered_map<size_t, std::string>{}, first_bucket_bytes, false, false, std::vector<int64_t>{});
    *out = new FtReducer{std::move(r)};
  })
}

void ft_reducer_free(FtReducer *r) { delete r; }

char *ft_reducer_prepare_forward(FtReducer *r) { GUARDED(r->reducer->prepare_for_forward()) }

// Call before backward of `loss`: the gradients of every parameter are then all-reduced (averaged
// over ranks) as they become ready, and written back before backward returns. With
// find_unused, parameters the loss does not reach (found from its graph) count as ready.
char *ft_reducer_prepare_backward(FtReducer *r, tensor loss) { GUARDED(r->reducer->prepare_for_backward({*loss})) }

// After the first backward, DDP re-buckets in the order gradients were ready.
char *ft_reducer_rebuild_buckets(FtReducer *r, bool *rebuilt) { GUARDED(*rebuilt = r->reducer->rebuild_buckets()) }

}  // extern "C"
