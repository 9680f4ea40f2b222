#include "serving/kv_cache.h"

#include <algorithm>

#include "core/check.h"

namespace serving {

KvCache::KvCache(int64_t num_layers, int64_t num_blocks, int64_t block_size, int64_t width)
    : num_layers_(num_layers), num_blocks_(num_blocks), block_size_(block_size), width_(width) {
  DSMOE_CHECK(num_layers > 0 && num_blocks > 0 && block_size > 0 && width > 0, "KvCache: layers ",
              num_layers, ", blocks ", num_blocks, ", block size ", block_size, ", width ", width);
  layers_.reserve(num_layers);
  for (int64_t l = 0; l < num_layers; ++l) {
    layers_.push_back(model::Matrix<float>::Zero(num_blocks * block_size, width));
  }
  free_.resize(num_blocks);
  for (int64_t b = 0; b < num_blocks; ++b) free_[b] = static_cast<int32_t>(num_blocks - 1 - b);
}

int64_t KvCache::BlocksForBytes(int64_t bytes, int64_t num_layers, int64_t block_size,
                                int64_t width) {
  const int64_t per_block = num_layers * block_size * width * static_cast<int64_t>(sizeof(float));
  return std::max<int64_t>(1, bytes / per_block);
}

bool KvCache::Reserve(int64_t tokens, std::vector<int32_t>* table) {
  const int64_t need = BlocksFor(tokens) - static_cast<int64_t>(table->size());
  if (need <= 0) return true;
  if (need > num_free_blocks()) return false;
  for (int64_t i = 0; i < need; ++i) {
    table->push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void KvCache::Release(std::vector<int32_t>* table) {
  for (auto it = table->rbegin(); it != table->rend(); ++it) free_.push_back(*it);
  table->clear();
}

float* KvCache::Slot(int64_t layer, const std::vector<int32_t>& table, int64_t pos) {
  return const_cast<float*>(static_cast<const KvCache*>(this)->Slot(layer, table, pos));
}

const float* KvCache::Slot(int64_t layer, const std::vector<int32_t>& table, int64_t pos) const {
  const int64_t block = pos / block_size_;
  DSMOE_CHECK(pos >= 0 && block < static_cast<int64_t>(table.size()), "KvCache: position ", pos,
              " beyond a table of ", table.size(), " blocks");
  return layers_[layer]
      .row(static_cast<int64_t>(table[block]) * block_size_ + pos % block_size_)
      .data();
}

}  // namespace serving
