/* SPDX-License-Identifier: MIT */
/*
 * fake-verbs.so: just enough of libibverbs, librdmacm and libefa for
 * Debian's libfabric 1.17 to open a "verbs" domain with no RDMA hardware,
 * so that tests can drive libfabric's real MR cache (and its memory
 * monitors: memhooks, userfaultfd, or one imported from uhmm).
 *
 * Use it with LD_PRELOAD. libfabric.so.1 links libibverbs/librdmacm/libefa
 * directly (no dlopen), with versioned references (ibv_reg_mr@IBVERBS_1.1);
 * the unversioned definitions here come first in the lookup scope and
 * satisfy them, so every call below lands here instead of the real library.
 *
 * What is faked:
 *  - one InfiniBand HCA, "fake_ib0", with one ACTIVE port (LID 1, 4K MTU,
 *    a link-local GID, pkey 0xffff); ibv_query_device/port/gid/pkey
 *    describe it, and rdma_get_devices() returns its (single) context;
 *  - PDs, CQs, completion channels (an eventfd), QPs, SRQs and AHs are
 *    plain heap objects: libfabric creates some while probing the device;
 *    nothing is ever sent or completed;
 *  - ibv_reg_mr faults the range in (MADV_POPULATE_WRITE, or _READ for
 *    read-only access), as pinning would, and fails with EFAULT if any page
 *    is unmapped. Each registration gets a generation from a global
 *    counter (also its lkey and rkey) and records the first 8 bytes it saw,
 *    so a test can tell a stale cached registration from a fresh one
 *    through fake_verbs_mr_lookup() and friends (fake-verbs.h);
 *  - every RDMA-CM call fails with ENODEV: libfabric then offers no
 *    FI_EP_MSG (and no RxM over it), only FI_EP_DGRAM, which is enough
 *    for a domain and its MR cache;
 *  - efadv_query_device fails, so the efa provider finds no EFA device.
 *
 * Extended verbs (ibv_query_device_ex, ibv_create_cq_ex, ...) are inline
 * functions of verbs.h that look at ctx->abi_compat; this context is not
 * "extended", so they fall back to the legacy calls or fail with EOPNOTSUPP.
 */
#ifndef _GNU_SOURCE	/* CMake defines it for every file */
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <infiniband/efadv.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "fake-verbs.h"

/* verbs.h turns these into inline wrappers; we define the real symbols. */
#undef ibv_get_device_list
#undef ibv_query_port
#undef ibv_reg_mr

#define EXPORT __attribute__((visibility("default")))

/* Stubs ignore most of their arguments. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* ---------------------------------------------------------------- device */

static struct ibv_device fake_dev = {
	.node_type = IBV_NODE_CA,
	.transport_type = IBV_TRANSPORT_IB,
	.name = "fake_ib0",
	.dev_name = "uverbs0",
	.dev_path = "/sys/class/infiniband_verbs/uverbs0",
	.ibdev_path = "/sys/class/infiniband/fake_ib0",
};

static int no_sys(void) { errno = EOPNOTSUPP; return EOPNOTSUPP; }
static int fake_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{ return 0; }	/* never a completion */
static int fake_req_notify_cq(struct ibv_cq *cq, int solicited)
{ return 0; }
static int fake_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr,
			  struct ibv_send_wr **bad)
{ *bad = wr; return no_sys(); }
static int fake_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr,
			  struct ibv_recv_wr **bad)
{ *bad = wr; return no_sys(); }
static int fake_post_srq_recv(struct ibv_srq *srq, struct ibv_recv_wr *wr,
			      struct ibv_recv_wr **bad)
{ *bad = wr; return no_sys(); }

EXPORT struct ibv_device **ibv_get_device_list(int *num)
{
	struct ibv_device **list = calloc(2, sizeof(*list));

	if (!list) {
		errno = ENOMEM;
		return NULL;
	}
	list[0] = &fake_dev;
	if (num)
		*num = 1;
	return list;
}

EXPORT void ibv_free_device_list(struct ibv_device **list) { free(list); }
EXPORT const char *ibv_get_device_name(struct ibv_device *dev)
{ return dev->name; }

EXPORT struct ibv_context *ibv_open_device(struct ibv_device *dev)
{
	struct ibv_context *ctx = calloc(1, sizeof(*ctx));

	if (!ctx)
		return NULL;
	ctx->device = dev;
	ctx->ops.poll_cq = fake_poll_cq;
	ctx->ops.req_notify_cq = fake_req_notify_cq;
	ctx->ops.post_send = fake_post_send;
	ctx->ops.post_recv = fake_post_recv;
	ctx->ops.post_srq_recv = fake_post_srq_recv;
	ctx->cmd_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ctx->async_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ctx->num_comp_vectors = 1;
	pthread_mutex_init(&ctx->mutex, NULL);
	return ctx;		/* abi_compat NULL: not an extended context */
}

EXPORT int ibv_close_device(struct ibv_context *ctx)
{
	close(ctx->cmd_fd);
	close(ctx->async_fd);
	pthread_mutex_destroy(&ctx->mutex);
	free(ctx);
	return 0;
}

EXPORT int ibv_query_device(struct ibv_context *ctx, struct ibv_device_attr *a)
{

	memset(a, 0, sizeof(*a));
	strcpy(a->fw_ver, "0.0.0");
	a->node_guid = htobe64(0x0002c90300fa4e00ULL);
	a->sys_image_guid = a->node_guid;
	a->max_mr_size = ~0ULL;
	a->page_size_cap = ~0xfffULL;
	a->vendor_id = 0x02c9;
	a->max_qp = a->max_cq = a->max_mr = a->max_pd = a->max_ah = 1 << 16;
	a->max_srq = 1 << 16;
	a->max_qp_wr = a->max_cqe = a->max_srq_wr = 1 << 15;
	a->max_sge = a->max_sge_rd = a->max_srq_sge = 30;
	a->max_qp_rd_atom = a->max_qp_init_rd_atom = a->max_res_rd_atom = 16;
	a->atomic_cap = IBV_ATOMIC_HCA;
	a->max_pkeys = 1;
	a->phys_port_cnt = 1;
	return 0;
}

EXPORT int ibv_query_port(struct ibv_context *ctx, uint8_t port,
			  struct _compat_ibv_port_attr *compat)
{
	struct ibv_port_attr *a = (struct ibv_port_attr *)compat;


	if (port != 1)
		return EINVAL;
	/* The caller (the inline ___ibv_query_port) passes a whole struct. */
	memset(a, 0, sizeof(*a));
	a->state = IBV_PORT_ACTIVE;
	a->max_mtu = a->active_mtu = IBV_MTU_4096;
	a->gid_tbl_len = 1;
	a->max_msg_sz = 1U << 31;
	a->pkey_tbl_len = 1;
	a->lid = 1;
	a->sm_lid = 1;
	a->max_vl_num = 1;
	a->active_width = 2;		/* 4x */
	a->active_speed = 32;		/* EDR */
	a->phys_state = 5;		/* LinkUp */
	a->link_layer = IBV_LINK_LAYER_INFINIBAND;
	return 0;
}

EXPORT int ibv_query_gid(struct ibv_context *ctx, uint8_t port, int index,
			 union ibv_gid *gid)
{

	if (port != 1 || index != 0)
		return -1;
	gid->global.subnet_prefix = htobe64(0xfe80000000000000ULL);
	gid->global.interface_id = htobe64(0x0002c90300fa4e01ULL);
	return 0;
}

EXPORT int ibv_query_pkey(struct ibv_context *ctx, uint8_t port, int index,
			  __be16 *pkey)
{

	if (port != 1 || index != 0)
		return -1;
	*pkey = htobe16(0xffff);
	return 0;
}

EXPORT int ibv_fork_init(void) { return 0; }
EXPORT enum ibv_fork_status ibv_is_fork_initialized(void)
{ return IBV_FORK_UNNEEDED; }
EXPORT const char *ibv_wc_status_str(enum ibv_wc_status s) { return "fake"; }

/* ------------------------------------------- objects nobody really uses */

#define NEW(type, ctx_)							\
	type *o = calloc(1, sizeof(*o));				\
	if (!o)								\
		return NULL;						\
	o->context = (ctx_)

EXPORT struct ibv_pd *ibv_alloc_pd(struct ibv_context *ctx)
{ NEW(struct ibv_pd, ctx); return o; }
EXPORT int ibv_dealloc_pd(struct ibv_pd *pd) { free(pd); return 0; }

EXPORT struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *ctx)
{
	NEW(struct ibv_comp_channel, ctx);
	o->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return o;
}
EXPORT int ibv_destroy_comp_channel(struct ibv_comp_channel *ch)
{ close(ch->fd); free(ch); return 0; }

EXPORT struct ibv_cq *ibv_create_cq(struct ibv_context *ctx, int cqe,
				    void *cq_ctx, struct ibv_comp_channel *ch,
				    int vector)
{
	NEW(struct ibv_cq, ctx);

	o->channel = ch;
	o->cq_context = cq_ctx;
	o->cqe = cqe;
	pthread_mutex_init(&o->mutex, NULL);
	pthread_cond_init(&o->cond, NULL);
	return o;
}
EXPORT int ibv_destroy_cq(struct ibv_cq *cq) { free(cq); return 0; }
EXPORT int ibv_get_cq_event(struct ibv_comp_channel *ch, struct ibv_cq **cq,
			    void **cq_ctx)
{ errno = EAGAIN; return -1; }
EXPORT void ibv_ack_cq_events(struct ibv_cq *cq, unsigned int n) { }

EXPORT struct ibv_qp *ibv_create_qp(struct ibv_pd *pd,
				    struct ibv_qp_init_attr *attr)
{
	static uint32_t next_qpn = 0x100;

	NEW(struct ibv_qp, pd->context);
	o->pd = pd;
	o->send_cq = attr->send_cq;
	o->recv_cq = attr->recv_cq;
	o->srq = attr->srq;
	o->qp_type = attr->qp_type;
	o->qp_context = attr->qp_context;
	o->qp_num = __atomic_fetch_add(&next_qpn, 1, __ATOMIC_RELAXED);
	o->state = IBV_QPS_RESET;
	if (attr->cap.max_inline_data < 64)
		attr->cap.max_inline_data = 64;
	return o;
}
EXPORT int ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask)
{
	if (mask & IBV_QP_STATE)
		qp->state = attr->qp_state;
	return 0;
}
EXPORT int ibv_destroy_qp(struct ibv_qp *qp) { free(qp); return 0; }
EXPORT struct ibv_qp_ex *ibv_qp_to_qp_ex(struct ibv_qp *qp)
{ errno = EOPNOTSUPP; return NULL; }

EXPORT struct ibv_srq *ibv_create_srq(struct ibv_pd *pd,
				      struct ibv_srq_init_attr *attr)
{
	NEW(struct ibv_srq, pd->context);
	o->pd = pd;
	o->srq_context = attr->srq_context;
	return o;
}
EXPORT int ibv_destroy_srq(struct ibv_srq *srq) { free(srq); return 0; }

EXPORT struct ibv_ah *ibv_create_ah(struct ibv_pd *pd, struct ibv_ah_attr *attr)
{
	NEW(struct ibv_ah, pd->context);

	o->pd = pd;
	return o;
}
EXPORT int ibv_destroy_ah(struct ibv_ah *ah) { free(ah); return 0; }

/* --------------------------------------------------- memory registration */

struct fake_mr {
	struct ibv_mr mr;		/* first: ibv_dereg_mr gets &mr */
	struct fake_verbs_mr_info info;
	struct fake_mr *next;
};

static pthread_mutex_t mr_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_mr *mr_list;
static uint64_t mr_gen, mr_live;	/* under mr_lock */

/* Fault [addr, addr + len) in like get_user_pages would; EFAULT if a hole. */
static int populate(void *addr, size_t len, int access)
{
	uintptr_t mask = (uintptr_t)sysconf(_SC_PAGESIZE) - 1;
	uintptr_t start = (uintptr_t)addr & ~mask;
	uintptr_t end = ((uintptr_t)addr + len + mask) & ~mask;
	int writes = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
		     IBV_ACCESS_REMOTE_ATOMIC;
	int advice = (access & writes) ? MADV_POPULATE_WRITE
				       : MADV_POPULATE_READ;

	if (len == 0)
		return 0;
	if (madvise((void *)start, end - start, advice) == 0)
		return 0;
	return (errno == ENOMEM || errno == EFAULT) ? EFAULT : errno;
}

/*
 * Copy the first (up to) 8 bytes of the range; EFAULT if they are gone.
 * Not memcpy: another thread may unmap the range between populate() and
 * this read (tests/fabric/mr-cache-concurrency.c does), and a real pin
 * would have failed or held the old pages, not crashed. process_vm_readv
 * on ourselves reports the hole instead of faulting.
 */
static int read_first8(void *addr, size_t len, uint64_t *out)
{
	struct iovec local = { .iov_base = out, .iov_len = len < 8 ? len : 8 };
	struct iovec remote = { .iov_base = addr, .iov_len = local.iov_len };

	*out = 0;
	if (len == 0)
		return 0;
	if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) ==
	    (ssize_t)local.iov_len)
		return 0;
	return EFAULT;
}

EXPORT struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr,
				       size_t len, uint64_t iova,
				       unsigned int access)
{
	struct fake_mr *m;
	int err = populate(addr, len, (int)access);


	if (err) {
		errno = err;
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	err = read_first8(addr, len, &m->info.first8);
	if (err) {
		free(m);
		errno = err;
		return NULL;
	}
	m->info.addr = addr;
	m->info.length = len;
	m->mr.context = pd->context;
	m->mr.pd = pd;
	m->mr.addr = addr;
	m->mr.length = len;

	pthread_mutex_lock(&mr_lock);
	m->info.gen = ++mr_gen;
	m->mr.handle = m->mr.lkey = m->mr.rkey = (uint32_t)m->info.gen;
	m->next = mr_list;
	mr_list = m;
	mr_live++;
	pthread_mutex_unlock(&mr_lock);
	return &m->mr;
}

EXPORT struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t len,
				 int access)
{
	return ibv_reg_mr_iova2(pd, addr, len, (uintptr_t)addr,
				(unsigned int)access);
}

EXPORT struct ibv_mr *ibv_reg_dmabuf_mr(struct ibv_pd *pd, uint64_t off,
					size_t len, uint64_t iova, int fd,
					int access)
{

	errno = EOPNOTSUPP;
	return NULL;
}

EXPORT int ibv_dereg_mr(struct ibv_mr *mr)
{
	struct fake_mr **p;

	pthread_mutex_lock(&mr_lock);
	for (p = &mr_list; *p && &(*p)->mr != mr; p = &(*p)->next)
		;
	if (!*p) {
		pthread_mutex_unlock(&mr_lock);
		return EINVAL;
	}
	*p = (*p)->next;
	mr_live--;
	pthread_mutex_unlock(&mr_lock);
	free((struct fake_mr *)mr);
	return 0;
}

/* The test API (fake-verbs.h). */

EXPORT int fake_verbs_mr_lookup(uint32_t key, struct fake_verbs_mr_info *out)
{
	struct fake_mr *m;
	int ret = -ENOENT;

	pthread_mutex_lock(&mr_lock);
	for (m = mr_list; m; m = m->next) {
		if (m->mr.lkey == key) {
			*out = m->info;
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&mr_lock);
	return ret;
}

EXPORT uint64_t fake_verbs_mr_gen(uint32_t key)
{
	struct fake_verbs_mr_info info;

	return fake_verbs_mr_lookup(key, &info) ? 0 : info.gen;
}

static uint64_t read_locked(const uint64_t *v)
{
	uint64_t r;

	pthread_mutex_lock(&mr_lock);
	r = *v;
	pthread_mutex_unlock(&mr_lock);
	return r;
}
EXPORT uint64_t fake_verbs_reg_count(void) { return read_locked(&mr_gen); }
EXPORT uint64_t fake_verbs_live_count(void) { return read_locked(&mr_live); }

/* ------------------------------------------- RDMA-CM: no IP-addressed HCA */

#define CM_FAIL(ret) do { errno = ENODEV; return ret; } while (0)

/* Like librdmacm: each device is opened once, and stays open. */
static struct ibv_context *cm_ctx;
static void cm_open(void) { cm_ctx = ibv_open_device(&fake_dev); }

EXPORT struct ibv_context **rdma_get_devices(int *num)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct ibv_context **list = calloc(2, sizeof(*list));

	if (!list)
		return NULL;
	pthread_once(&once, cm_open);
	list[0] = cm_ctx;
	if (num)
		*num = cm_ctx ? 1 : 0;
	return list;
}
EXPORT void rdma_free_devices(struct ibv_context **list) { free(list); }

EXPORT struct rdma_event_channel *rdma_create_event_channel(void)
{ CM_FAIL(NULL); }
EXPORT void rdma_destroy_event_channel(struct rdma_event_channel *ch) { }
EXPORT int rdma_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **id,
			  void *ctx, enum rdma_port_space ps)
{ CM_FAIL(-1); }
EXPORT int rdma_destroy_id(struct rdma_cm_id *id) { return 0; }
EXPORT void rdma_destroy_ep(struct rdma_cm_id *id) { }
EXPORT int rdma_getaddrinfo(const char *node, const char *svc,
			    const struct rdma_addrinfo *hints,
			    struct rdma_addrinfo **res)
{ *res = NULL; CM_FAIL(-1); }
EXPORT void rdma_freeaddrinfo(struct rdma_addrinfo *res) { }
EXPORT int rdma_bind_addr(struct rdma_cm_id *id, struct sockaddr *a)
{ CM_FAIL(-1); }
EXPORT int rdma_resolve_addr(struct rdma_cm_id *id, struct sockaddr *s,
			     struct sockaddr *d, int ms)
{ CM_FAIL(-1); }
EXPORT int rdma_resolve_route(struct rdma_cm_id *id, int ms)
{ CM_FAIL(-1); }
EXPORT int rdma_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd,
			  struct ibv_qp_init_attr *a)
{ CM_FAIL(-1); }
EXPORT int rdma_create_qp_ex(struct rdma_cm_id *id,
			     struct ibv_qp_init_attr_ex *a)
{ CM_FAIL(-1); }
EXPORT int rdma_connect(struct rdma_cm_id *id, struct rdma_conn_param *p)
{ CM_FAIL(-1); }
EXPORT int rdma_establish(struct rdma_cm_id *id) { CM_FAIL(-1); }
EXPORT int rdma_listen(struct rdma_cm_id *id, int backlog)
{ CM_FAIL(-1); }
EXPORT int rdma_accept(struct rdma_cm_id *id, struct rdma_conn_param *p)
{ CM_FAIL(-1); }
EXPORT int rdma_reject(struct rdma_cm_id *id, const void *data, uint8_t len)
{ CM_FAIL(-1); }
EXPORT int rdma_disconnect(struct rdma_cm_id *id) { CM_FAIL(-1); }
EXPORT int rdma_get_cm_event(struct rdma_event_channel *ch,
			     struct rdma_cm_event **ev)
{ CM_FAIL(-1); }
EXPORT int rdma_ack_cm_event(struct rdma_cm_event *ev) { return 0; }
EXPORT int rdma_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *ch)
{ CM_FAIL(-1); }
EXPORT const char *rdma_event_str(enum rdma_cm_event_type ev) { return "FAKE"; }
EXPORT __be16 rdma_get_src_port(struct rdma_cm_id *id) { return 0; }

/* ------------------------------------------------- efa: not an EFA device */

EXPORT int efadv_query_device(struct ibv_context *ctx,
			      struct efadv_device_attr *a, uint32_t inlen)
{ return EOPNOTSUPP; }
EXPORT int efadv_query_ah(struct ibv_ah *ah, struct efadv_ah_attr *a,
			  uint32_t inlen)
{ return EOPNOTSUPP; }
EXPORT struct ibv_cq_ex *efadv_create_cq(struct ibv_context *ctx,
					 struct ibv_cq_init_attr_ex *a,
					 struct efadv_cq_init_attr *ea,
					 uint32_t inlen)
{ errno = EOPNOTSUPP; return NULL; }
EXPORT struct efadv_cq *efadv_cq_from_ibv_cq_ex(struct ibv_cq_ex *cq)
{ return NULL; }
EXPORT struct ibv_qp *efadv_create_qp_ex(struct ibv_context *ctx,
					 struct ibv_qp_init_attr_ex *a,
					 struct efadv_qp_init_attr *ea,
					 uint32_t inlen)
{ errno = EOPNOTSUPP; return NULL; }
