/* npz.h: numpy's .npz files as the ADM evaluation suite reads and writes
 * them: a ZIP archive of .npy arrays, stored (not compressed), with ZIP64
 * records where a size or an offset does not fit in 32 bits.
 *
 * Writing: a streaming writer for one large array (50,000 ImageNet samples
 * are 9.8 GB: rows are appended as they are produced and never held in
 * memory), and npz_write for a few arrays in memory (statistics files:
 * mu, sigma). Both are atomic: a temporary file beside the target is
 * written, synced and renamed over it; a failed or aborted write leaves
 * no file (and an existing one unchanged).
 *
 * Reading: np.savez output (stored members, .npy format 1.0, 2.0 and 3.0,
 * little-endian |u1 <f4 <f8 <i8, C order), whole arrays or rows at a time.
 * docs/formats.md lists what is checked. */
#ifndef IREPA_NPZ_H
#define IREPA_NPZ_H

#include "tensor.h"

/* ---- writing -------------------------------------------------------------- */

typedef struct NpzWriter NpzWriter;

/* Opens a temporary file beside `path` for an npz holding one array `name`
 * (e.g. "arr_0"; the member is name.npy) of dtype DT_U8, DT_F32, DT_F64 or
 * DT_I64 and the given shape (rank 1 to IR_MAX_RANK), shape[0] rows in
 * all. NULL with a message on a bad dtype or shape or an unwritable place. */
NpzWriter *npz_writer_open(const char *path, const char *name, DType dtype, int rank, const int64_t *shape,
                           RtError *err);
/* Appends nrows rows (each the product of shape[1:] elements), in order,
 * C-contiguous. More rows than the shape holds is an error. */
bool npz_writer_append(NpzWriter *w, const void *rows, int64_t nrows, RtError *err);
/* Checks that every row was written, writes the central directory, syncs
 * and renames over path. Frees w, also on failure (then nothing is left
 * at path that was not there before). */
bool npz_writer_close(NpzWriter *w, RtError *err);
/* Removes the temporary file and frees w (NULL is fine). */
void npz_writer_abort(NpzWriter *w);

/* Writes the tensors (U8, F32, F64 or I64), members named after them
 * (t->name + ".npy"), in the order given. Atomic. */
bool npz_write(const char *path, Tensor *const *tensors, int n, RtError *err);

/* ---- reading -------------------------------------------------------------- */

typedef struct {
  char *name;        /* the member's name without ".npy" (np.load's key) */
  DType dtype;
  int rank;
  int64_t shape[IR_MAX_RANK];
  int64_t row_bytes; /* bytes of one row (shape[1:]; the element for rank 0) */
  uint64_t offset;   /* where the array's data starts in the file */
  uint64_t nbytes;
  const char *error; /* why the array cannot be read (dtype, compression, ...); NULL if it can */
} NpzArray;

typedef struct NpzFile NpzFile;

/* Opens an .npz and reads its directory and every .npy header. NULL with a
 * message naming the file on a missing, unreadable, truncated or malformed
 * archive. An array that is there but cannot be read (a compressed member,
 * an unsupported dtype, Fortran order) does not fail the open: its
 * `error` says why, and npz_get and npz_read report it. */
NpzFile *npz_open(const char *path, RtError *err);
const char *npz_path(const NpzFile *f);
int npz_count(const NpzFile *f);
const NpzArray *npz_array(const NpzFile *f, int i); /* in directory order */
/* The array `name`; NULL when absent (without a message) */
const NpzArray *npz_find(const NpzFile *f, const char *name);
/* The array `name`, readable; NULL with a message naming file and array. */
const NpzArray *npz_get(const NpzFile *f, const char *name, RtError *err);
/* The whole array as a new tensor named `name`; its CRC-32 is checked. */
Tensor *npz_read(NpzFile *f, const char *name, RtError *err);
/* Rows [first, first + nrows) of the array (rank >= 1) into dst
 * (nrows * row_bytes bytes). Reading all rows in order, in any number of
 * calls, checks the member's CRC-32 when the last row is read. */
bool npz_read_rows(NpzFile *f, const char *name, int64_t first, int64_t nrows, void *dst, RtError *err);
void npz_close(NpzFile *f); /* NULL is fine */

#endif
