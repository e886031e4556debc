/*
 * The one table the executable reads from thaw-ext.so (see ext.h).
 */
#include "ext/bindings.h"
#include "ext/ext.h"

#include <stddef.h>

void thaw_ext_bindings_init(void)
{
	kv_binding_register();
	d1_binding_register();
	queue_binding_register();
	r2_binding_register();
	do_binding_register();
}

const struct thaw_ext_command thaw_ext_commands[] = {
	{"serve", cmd_serve},
	{"unpack-bundle", cmd_unpack_bundle},
	{"pack", cmd_pack},
	{"adopt-snapshot", cmd_adopt_snapshot},
	{"deploy", cmd_deploy},
	{"versions", cmd_versions},
	{"rollout", cmd_rollout},
	{"rollback", cmd_rollback},
	{"tail", cmd_tail},
	{"secret", cmd_secret},
	{"crons", cmd_crons},
	{"kv", cmd_kv},
	{"d1", cmd_d1},
	{NULL, NULL},
};
