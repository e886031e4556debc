/*
 * The storage binding kinds thaw-ext.so serves (binding.h): each registers
 * itself from thaw_ext_bindings_init (commands.c), and gives the path of a
 * binding's store for the CLI commands that open it directly (`thaw kv`,
 * `thaw d1`).
 */
#ifndef THAW_EXT_BINDINGS_H
#define THAW_EXT_BINDINGS_H

#include <jansson.h>

void kv_binding_register(void);
/* STATE/kv/ID.sqlite for a kv_namespaces entry (returns new). */
char *kv_binding_path(const char *state_dir, const json_t *entry);

/* Queues (queue_binding.c): producers in env, consumers run by the host. */
void queue_binding_register(void);

void d1_binding_register(void);
/* r2_binding.c: R2 buckets ("r2_buckets"). */
void r2_binding_register(void);
/* do_binding.c: Durable Object namespaces ("durable_objects.bindings"). */
void do_binding_register(void);
/* STATE/d1/NAME.sqlite for a d1_databases entry (returns new). */
char *d1_binding_path(const char *state_dir, const json_t *entry);

#endif
