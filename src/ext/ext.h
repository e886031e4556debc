/*
 * thaw-ext.so: the commands an instance never runs.
 *
 * The `thaw` executable is also the instance process (`thaw worker`), and
 * every shared object an instance maps costs each restore its mappings and
 * relocated pages (measured: 49 objects instead of 18 took restore p50 from
 * 9.1 to 11-11.7 ms). So what needs SQLite, libcrypto, libarchive or libcurl
 * lives here, in a module the executable dlopens only for those commands:
 * `thaw serve` and its helper children, and the control API's clients.
 *
 * THE BOUNDARY, both ways:
 *   - The executable finds the module's commands through ONE symbol,
 *     thaw_ext_commands (a table ended by a NULL name). No other name of
 *     the module is looked up.
 *   - The module calls back into the executable (the event loop, the HTTP
 *     front, instance pools, the snap engine's file checks, the project
 *     model, the common helpers). Those functions are an ABI between the two
 *     files: THAW_HOST_ABI below lists every one of them, and the test
 *     `ext_abi` fails when the module resolves a symbol of the executable
 *     that is not listed, or a listed one is not exported.
 *   - The executable never links SQLite, libcrypto, libarchive or libcurl;
 *     the tests `linked_objects` (NEEDED list) and the e2e maps guard check it.
 */
#ifndef THAW_EXT_EXT_H
#define THAW_EXT_EXT_H

struct thaw_ext_command {
	const char *name; /* as typed after `thaw` */
	int (*main)(int argc, char **argv);
};

/* Registers the binding kinds the module serves (binding.h): called by
 * `thaw dev` after loading it, and by `thaw serve`. */
void thaw_ext_bindings_init(void);
#define THAW_EXT_BINDINGS_SYMBOL "thaw_ext_bindings_init"

/* The module's commands, ended by {NULL, NULL}. */
extern const struct thaw_ext_command thaw_ext_commands[];
#define THAW_EXT_COMMANDS_SYMBOL "thaw_ext_commands"

/*
 * Every function (and variable) of the executable that thaw-ext.so uses. A
 * change to one of these is a change to both files; the `ext_abi` test
 * (tests/abi/ext_abi.sh) compares this list with what the built module
 * really resolves from the executable, both ways.
 */
#define THAW_HOST_ABI(X) \
	/* common/log.h, common/util.h, common/buf.h */ \
	X(buf_append) X(buf_consume) X(buf_free) X(buf_printf) X(buf_reserve) X(buf_reset) X(buf_shrink) \
	X(empty_dir_fd) X(err_set) X(fatal) X(mkdir_p) X(now_ns) X(parse_u64) X(path_join) X(read_file) \
	X(print_answer) X(self_exe) X(thaw_log) X(thaw_log_level) X(utf8_decode) X(wall_ms) \
	X(write_all) X(xasprintf) X(xcalloc) X(remove_tree) \
	X(xmalloc) X(xrealloc) X(xstrdup) \
	/* host/loop.h */ \
	X(loop_add) X(loop_defer_free) X(loop_del) X(loop_free) X(loop_get_stats) X(loop_mod) X(loop_stat_bounds_ms) \
	X(loop_run) X(loop_timer_arm) X(loop_timer_cancel) \
	/* host/host.h (front, options, pools) */ \
	X(front_start) X(front_stop) X(host_defaults) X(host_listen) X(host_loop_start) X(host_mhd_attach) \
	X(host_mhd_log) X(host_opt_u64) X(host_option) X(pool_base_new) X(pool_build_snapshot) X(pool_drain) \
	X(pool_fill_spares) X(pool_shutdown) X(pool_snapshot_adopted) X(pool_use_snapshot) \
	X(pool_unused) X(pool_app_dispose) X(host_scheduled_run) X(host_scheduled_outcome) X(host_queue_run) \
	X(host_ms_to_next_minute) X(bindings_setup) X(executor_stop) X(executor_submit) \
	X(executor_stopping) \
	X(binding_kind_register) X(binding_call_done) X(call_result_init) X(call_result_dispose) \
	X(call_result_pair) X(call_result_pairs) X(call_arg) \
	X(binding_call_forward_pinned) X(front_internal_stream_pinned) X(host_instance_app) \
	X(hreq_resp_header) X(service_fetch_head) X(service_rpc_head) X(host_sandbox_free) X(host_sandbox_roots) \
	X(hreq_resp_header) X(service_fetch_head) X(service_rpc_head) X(host_limits_check) \
	/* host/host.h (memory.c) */ \
	X(host_memory_start) X(host_memory_swept_ms) X(host_memory_sweeps) \
	X(pool_app_memory) \
	/* host/child.h */ \
	X(child_answer) X(child_cancel) X(child_kill) X(child_kill_all) X(child_start) \
	/* project/project.h */ \
	X(project_free) X(project_from_json) X(project_load) X(project_name_valid) \
	X(project_to_json) X(cron_parse) X(cron_matches) X(project_env_name_valid) \
	X(project_load_env) \
	/* snap/snap.h (reading and checking images, never restoring) */ \
	X(snap_check_file) X(snap_hash) X(snap_image_free) X(snap_open) X(snap_remove) \
	X(snap_verify_data) X(snap_base_pages) X(snap_dep_path) \
	/* cli/install.h (thaw deploy installs first) */ \
	X(thaw_install_needed) X(thaw_install_option) X(thaw_install_run)

/* The commands (their usage is in `thaw help` and each one's --help). */
int cmd_serve(int argc, char **argv);         /* serve.c */
int cmd_unpack_bundle(int argc, char **argv); /* bundle_cmd.c: the host's unpacking child */
int cmd_pack(int argc, char **argv);          /* bundle_cmd.c: pack a project (tests) */
int cmd_adopt_snapshot(int argc, char **argv); /* adopt_cmd.c: the host's image-storing child */
int cmd_deploy(int argc, char **argv);        /* remote.c: the control API's client */
int cmd_versions(int argc, char **argv);
int cmd_rollout(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_secret(int argc, char **argv);
int cmd_crons(int argc, char **argv);
int cmd_kv(int argc, char **argv); /* state_cmd.c: a project's local KV and D1 */
int cmd_d1(int argc, char **argv);

#endif
