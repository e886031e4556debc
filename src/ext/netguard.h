/* Instances kept off the control API by an nftables rule (netguard.c). */
#ifndef THAW_EXT_NETGUARD_H
#define THAW_EXT_NETGUARD_H

#include <stddef.h>
#include <stdint.h>

/* Refuse TCP connects from uids uid_first..uid_last to control_port on any
 * local address. 0, or -1 with why (then nothing was changed). */
int netguard_start(uint32_t uid_first, uint32_t uid_last, unsigned control_port, char *why,
		   size_t whylen);
/* Remove this host's rules (at stop). */
void netguard_stop(void);

#endif
