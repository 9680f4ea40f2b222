#include "serving/kv_cache.h"

#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace serving {
namespace {

TEST(KvCacheTest, ReserveReleaseAndSlots) {
  KvCache cache(/*num_layers=*/2, /*num_blocks=*/5, /*block_size=*/4, /*width=*/3);
  EXPECT_EQ(cache.num_free_blocks(), 5);
  EXPECT_EQ(cache.BlocksFor(0), 0);
  EXPECT_EQ(cache.BlocksFor(9), 3);
  std::vector<int32_t> a, b;
  ASSERT_TRUE(cache.Reserve(9, &a));
  EXPECT_EQ(a.size(), 3u);
  ASSERT_TRUE(cache.Reserve(9, &a));  // already covered
  EXPECT_EQ(a.size(), 3u);
  EXPECT_FALSE(cache.Reserve(9, &b));  // 2 free, 3 needed: nothing taken
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(cache.num_free_blocks(), 2);
  ASSERT_TRUE(cache.Reserve(8, &b));
  EXPECT_EQ(cache.num_used_blocks(), 5);
  std::set<int32_t> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  EXPECT_EQ(all.size(), 5u);  // distinct blocks
  // Slots of different positions and layers are distinct memory.
  cache.Slot(0, a, 5)[2] = 1.5f;
  cache.Slot(1, a, 5)[2] = 2.5f;
  EXPECT_EQ(cache.Slot(0, a, 5)[2], 1.5f);
  EXPECT_EQ(cache.Slot(1, a, 5)[2], 2.5f);
  EXPECT_NE(cache.Slot(0, a, 5), cache.Slot(0, b, 5));
  EXPECT_EQ(cache.Slot(0, a, 5) + 3, cache.Slot(0, a, 6));
  cache.Release(&a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(cache.num_free_blocks(), 3);
  EXPECT_DEATH(cache.Slot(0, b, 8), "beyond");
}

TEST(KvCacheTest, BlocksForBytes) {
  // 2 layers * 4 slots * 3 floats * 4 bytes = 96 bytes a block.
  EXPECT_EQ(KvCache::BlocksForBytes(960, 2, 4, 3), 10);
  EXPECT_EQ(KvCache::BlocksForBytes(10, 2, 4, 3), 1);
}

}  // namespace
}  // namespace serving
