/* Tuning constants shared by softmax.c and cross_entropy.c. None affects results:
 * a row is always computed the same way, whatever the block or thread count. */
#ifndef DLK_SOFTMAX_COMMON_H
#define DLK_SOFTMAX_COMMON_H

/* Elements per block of rows: the flat exp loop runs over this many, and the block's
 * rows stay in L1 between the passes. */
#define DLK_SOFTMAX_BLOCK_ELEMS 2048
/* Columns processed together when the softmax axis is not the last (inner > 1). */
#define DLK_SOFTMAX_COLS 64
/* Below this many elements the OpenMP fork costs more than it saves. */
#define DLK_SOFTMAX_SERIAL_ELEMS 16384
/* Rows at least this long fuse exp, store and sum in one loop (see softmax_rows.h). */
#define DLK_SOFTMAX_FUSE_D 64

#endif
