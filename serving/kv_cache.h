// The paged KV cache: fixed-size blocks of token slots shared by all sequences, a block table per
// sequence (logical block i of a sequence -> physical block), and a free list.
//
// What a slot holds per layer is the attention's choice (`width` floats): for MLA the normalised
// compressed latent and the rotated rope key, [kv_lora_rank | qk_rope_head_dim], as DeepSeek-V3's
// reference caches them; for standard attention the rotated keys and the values of every head.
//
// Not thread-safe: the engine's step thread owns it.
#ifndef SERVING_KV_CACHE_H_
#define SERVING_KV_CACHE_H_

#include <cstdint>
#include <vector>

#include "model/matrix.h"

namespace serving {

class KvCache {
 public:
  // num_layers layers of num_blocks blocks of block_size slots of `width` floats. CHECKs every
  // argument is positive.
  KvCache(int64_t num_layers, int64_t num_blocks, int64_t block_size, int64_t width);

  // Blocks that hold `bytes` for a model of num_layers layers and `width`, at least 1.
  static int64_t BlocksForBytes(int64_t bytes, int64_t num_layers, int64_t block_size,
                                int64_t width);

  int64_t num_blocks() const { return num_blocks_; }
  int64_t block_size() const { return block_size_; }
  int64_t width() const { return width_; }
  int64_t num_free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t num_used_blocks() const { return num_blocks_ - num_free_blocks(); }
  // Blocks a sequence of `tokens` tokens needs.
  int64_t BlocksFor(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }

  // Appends blocks to *table until it covers `tokens` slots. False (and *table unchanged) if the
  // free list is too short.
  bool Reserve(int64_t tokens, std::vector<int32_t>* table);
  // Returns every block of *table to the free list and clears it.
  void Release(std::vector<int32_t>* table);

  // The slot of position `pos` of the sequence with block table `table`, in layer `layer`
  // (`width` floats). CHECKs that the table covers pos.
  float* Slot(int64_t layer, const std::vector<int32_t>& table, int64_t pos);
  const float* Slot(int64_t layer, const std::vector<int32_t>& table, int64_t pos) const;

 private:
  int64_t num_layers_, num_blocks_, block_size_, width_;
  std::vector<model::Matrix<float>> layers_;  // [num_blocks * block_size, width] each
  std::vector<int32_t> free_;                 // a stack: the last freed block is reused first
};

}  // namespace serving

#endif  // SERVING_KV_CACHE_H_
