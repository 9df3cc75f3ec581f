/*
 * compiler: the attributes the tree uses, named once.
 *
 * WARN_UNUSED_RESULT marks a result a caller must look at: a write that
 * may not have happened, a check that may have failed. With it, dropping
 * one is a compile error under -Werror (and a cast to void does not hide
 * it from GCC: handle the result, or say in an if why it does not matter).
 */
#ifndef RECEIPT_COMMON_COMPILER_H
#define RECEIPT_COMMON_COMPILER_H

#define WARN_UNUSED_RESULT __attribute__((warn_unused_result))

#endif
