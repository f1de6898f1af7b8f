/* Tests of runtime/online_eval.c's pieces that need no model: the
 * evaluation's labels are the reference's class-sorted blocks padded with
 * class 0, and the logged names are the reference's with the feature
 * network appended. Sampling and scoring run in e2e_train_jit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "online_eval.h"

static void labels_are_class_sorted_blocks(void **state) {
  (void)state;
  /* repeat(arange(10), 25 // 10): 0 0 1 1 ... 9 9, then 5 zeros */
  for (int64_t i = 0; i < 20; i++) assert_int_equal(online_eval_label(i, 25, 10), i / 2);
  for (int64_t i = 20; i < 25; i++) assert_int_equal(online_eval_label(i, 25, 10), 0);
  /* 50,000 images of 1,000 classes: 50 each */
  assert_int_equal(online_eval_label(49, 50000, 1000), 0);
  assert_int_equal(online_eval_label(50, 50000, 1000), 1);
  assert_int_equal(online_eval_label(49999, 50000, 1000), 999);
  /* fewer images than classes: all class 0 */
  assert_int_equal(online_eval_label(3, 5, 10), 0);
}

static void tags_format_cfg_as_python(void **state) {
  (void)state;
  char buf[128];
  online_eval_tag("fid", 1.0, 256, "fmnist-vit", buf, sizeof buf);
  assert_string_equal(buf, "fid_cfg1.0_res256_fmnist-vit");
  online_eval_tag("is", 2.9, 32, "fmnist-vit", buf, sizeof buf);
  assert_string_equal(buf, "is_cfg2.9_res32_fmnist-vit");
  online_eval_tag("fid", 1.25, 32, "x", buf, sizeof buf);
  assert_string_equal(buf, "fid_cfg1.25_res32_x");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(labels_are_class_sorted_blocks),
      cmocka_unit_test(tags_format_cfg_as_python),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
