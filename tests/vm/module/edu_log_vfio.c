// SPDX-License-Identifier: GPL-2.0
/*
 * edu_log_vfio: a vfio-pci variant driver for QEMU's "edu" device (1234:11e8) that implements
 * the kernel's device DMA logging (struct vfio_log_ops), for vfio-dirty's real-kernel tests.
 *
 * edu has no dirty tracking of its own, so this driver watches the DMA commands that pass
 * through the region-write path. It mirrors edu's register model (QEMU hw/misc/edu.c):
 *   0x80 source, 0x88 destination, 0x90 count: a 4- or 8-byte write at exactly that offset
 *        sets the whole field (zero-extended); writes while a DMA runs are ignored by edu.
 *   0x98 command: bit 0 starts a DMA (ignored while one runs), bit 1 = device -> RAM.
 *   edu masks DMA addresses to 28 bits (its dma_mask), so we mark (dst & mask).
 * A device -> RAM command marks the destination pages that fall inside the logged ranges.
 * Marking happens when the command is issued; a DMA still running at the time of a report
 * keeps its pages dirty for the next report too, so a sync between issue and completion
 * cannot lose the write.
 *
 * BAR0 cannot be mmap'ed (and is not advertised as mmap-able), and VFIO_DEVICE_IOEVENTFD is
 * refused, so every register write reaches this driver.
 *
 * Log state: one bitmap over edu's 2^28-byte DMA space at the logging page size, plus the list
 * of logged ranges. log_read_and_clear hands each dirty log page to iova_bitmap_set, which
 * replicates or coarsens it to the REPORT's page size.
 *
 * Errors follow what vfio-dirty's simulated host models: a second log_start while logging is
 * EBUSY; log_read_and_clear while not logging is EINVAL; log_stop is always accepted.
 *
 * bug=NAME injects one driver bug at a time into the log ops, as real drivers get them wrong, so
 * that `vfio-dirty check` can be shown to fail exactly the rules each breaks (the bug table in
 * packages/cli/test/check/bug-table.ts; the simulated host's dmaLogging.quirks take the same
 * names). Given at insmod or written at run time to /sys/module/edu_log_vfio/parameters/bug;
 * "none" (the default) is the correct driver. See edu_bug_names below.
 */
#include <linux/bitmap.h>
#include <linux/interval_tree.h>
#include <linux/iova_bitmap.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/ptrace.h>
#include <linux/sched/task_stack.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>
#include <linux/version.h>
#include "edu_log.h"

#define EDU_DMA_SPACE (1ULL << 28)
#define EDU_REG_SRC 0x80
#define EDU_REG_DST 0x88
#define EDU_REG_CNT 0x90
#define EDU_REG_CMD 0x98
#define EDU_CMD_RUN 0x1
#define EDU_CMD_TO_RAM 0x2
#define EDU_LOG_MAX_RANGES 256

/*
 * The smallest logging page the device offers. START clamps the page size it is asked for up to
 * this and writes it back, as mlx5 clamps to the range its firmware supports: with it the tests
 * meet logging pages larger than the tracking page (64 KiB, 2 MiB), whose REPORTs must never cut
 * a page. Writable at run time (/sys/module/edu_log_vfio/parameters/min_page_size); a value that
 * is not a power of two from 4 KiB to the DMA space counts as 4 KiB.
 */
static ulong min_page_size = SZ_4K;
module_param(min_page_size, ulong, 0644);
MODULE_PARM_DESC(min_page_size, "smallest DMA logging page size; START clamps up to it (default 4096)");

/*
 * The injectable bugs (bug=), one at a time:
 *   no-clear          REPORT does not clear what it reported
 *   drop-last-page    REPORT skips the last logging page of its range: neither reported nor cleared
 *   ignore-page-size  START writes back the page size asked for, but the driver logs at 64 KiB
 *   zero-bitmap       REPORT writes zeros over the caller's bitmap before setting its bits
 *   outside-range     REPORT also reports, and clears, the logging page just past its range
 *   drop-ranges       START accepts any number of ranges but logs only the first 4
 *   stop-noop         STOP answers 0 but logging goes on (close_device still stops it)
 *   second-start      a START while logging succeeds and starts the log afresh
 */
enum edu_bug {
	EDU_BUG_NONE,
	EDU_BUG_NO_CLEAR,
	EDU_BUG_DROP_LAST_PAGE,
	EDU_BUG_IGNORE_PAGE_SIZE,
	EDU_BUG_ZERO_BITMAP,
	EDU_BUG_OUTSIDE_RANGE,
	EDU_BUG_DROP_RANGES,
	EDU_BUG_STOP_NOOP,
	EDU_BUG_SECOND_START,
};

static const char *const edu_bug_names[] = {
	"none", "no-clear", "drop-last-page", "ignore-page-size", "zero-bitmap",
	"outside-range", "drop-ranges", "stop-noop", "second-start",
};

#define EDU_BUG_LOG_PAGE SZ_64K
#define EDU_BUG_RANGES 4

static int edu_bug = EDU_BUG_NONE;

static int edu_bug_set(const char *val, const struct kernel_param *kp)
{
	int i = sysfs_match_string(edu_bug_names, val);

	if (i < 0)
		return -EINVAL;
	WRITE_ONCE(edu_bug, i);
	return 0;
}

static int edu_bug_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", edu_bug_names[READ_ONCE(edu_bug)]);
}

static const struct kernel_param_ops edu_bug_ops = { .set = edu_bug_set, .get = edu_bug_get };
module_param_cb(bug, &edu_bug_ops, NULL, 0644);
MODULE_PARM_DESC(bug, "inject one log_ops bug: none, no-clear, drop-last-page, ignore-page-size, "
		      "zero-bitmap, outside-range, drop-ranges, stop-noop, second-start");

static bool edu_has_bug(enum edu_bug b)
{
	return READ_ONCE(edu_bug) == b;
}

struct edu_range {
	u64 start;
	u64 last; /* inclusive, as in struct interval_tree_node */
};

struct edu_log_device {
	struct vfio_pci_core_device core;
	/* Guards everything below: region writes and log ops come from different threads. */
	struct mutex lock;
	/* Shadow of edu's DMA registers, as edu itself holds them. */
	u64 src, dst, cnt;
	/* The last device -> RAM DMA issued, kept until the device reports it finished. */
	bool pending;
	u64 pending_iova, pending_length;
	/* Logging state. */
	bool logging;
	u64 page_size;
	unsigned long *dirty; /* one bit per page_size page of [0, EDU_DMA_SPACE) */
	unsigned long nbits;
	struct edu_range *ranges;
	u32 nranges;
	/* Migration (edu_log_mig.c). */
	struct edu_mig mig;
};

static struct edu_log_device *to_edu(struct vfio_device *vdev)
{
	return container_of(vdev, struct edu_log_device, core.vdev);
}

/* edu's command register says whether a DMA is still running. */
static bool edu_dma_running(struct edu_log_device *edu)
{
	void __iomem *bar = edu->core.barmap[0];

	/* No access through vfio yet means no DMA was ever started through it. */
	if (!bar)
		return false;
	return ioread32(bar + EDU_REG_CMD) & EDU_CMD_RUN;
}

/* Mark [iova, iova + length) where it meets a logged range. Caller holds edu->lock. */
static void edu_mark(struct edu_log_device *edu, u64 iova, u64 length)
{
	u64 last = iova + length - 1;
	u32 i;

	if (!edu->logging || !length)
		return;
	for (i = 0; i < edu->nranges; i++) {
		u64 s = max(iova, edu->ranges[i].start);
		u64 e = min(last, edu->ranges[i].last);

		if (s > e || s >= EDU_DMA_SPACE)
			continue;
		e = min(e, EDU_DMA_SPACE - 1);
		bitmap_set(edu->dirty, s / edu->page_size, e / edu->page_size - s / edu->page_size + 1);
	}
}

/* Feed one 4-byte register write at BAR0 offset `off` into the shadow. Caller holds the lock. */
static void edu_shadow_write(struct edu_log_device *edu, u64 off, u32 val)
{
	bool running = edu_dma_running(edu);

	switch (off) {
	case EDU_REG_SRC:
		if (!running)
			edu->src = val;
		break;
	case EDU_REG_DST:
		if (!running)
			edu->dst = val;
		break;
	case EDU_REG_CNT:
		if (!running)
			edu->cnt = val;
		break;
	case EDU_REG_CMD:
		if (!(val & EDU_CMD_RUN) || running)
			break;
		if (val & EDU_CMD_TO_RAM) {
			u64 iova = edu->dst & (EDU_DMA_SPACE - 1);

			edu_mark(edu, iova, edu->cnt);
			edu->pending = true;
			edu->pending_iova = iova;
			edu->pending_length = edu->cnt;
		}
		break;
	}
}

static ssize_t edu_log_write(struct vfio_device *vdev, const char __user *buf, size_t count,
			     loff_t *ppos)
{
	struct edu_log_device *edu = to_edu(vdev);
	unsigned int index = VFIO_PCI_OFFSET_TO_INDEX(*ppos);
	u64 off = *ppos & VFIO_PCI_OFFSET_MASK;
	ssize_t ret;

	if (index != VFIO_PCI_BAR0_REGION_INDEX)
		return vfio_pci_core_write(vdev, buf, count, ppos);
	/* Refused while the device is stopped for migration; holds the migration lock if not. */
	ret = edu_mig_bar_write_begin(&edu->mig, off, count);
	if (ret)
		return ret;

	/*
	 * vfio-pci splits a BAR access into aligned 4-byte writes (smaller pieces at the edges,
	 * which edu ignores); mirror exactly that before forwarding, under the lock, so the shadow
	 * and the device see the same sequence.
	 */
	mutex_lock(&edu->lock);
	if (count <= 64) {
		u8 tmp[64];
		size_t i;

		if (copy_from_user(tmp, buf, count)) {
			mutex_unlock(&edu->lock);
			edu_mig_bar_write_end(&edu->mig);
			return -EFAULT;
		}
		for (i = 0; i < count; i++) {
			u64 at = off + i;
			u32 val;

			if (at % 4 || i + 4 > count)
				continue;
			memcpy(&val, tmp + i, 4);
			edu_shadow_write(edu, at, val);
		}
	} else if (off < EDU_REG_CMD + 8 && off + count > EDU_REG_SRC) {
		/* A long write over the DMA registers: we cannot follow it, so log everything. */
		edu_mark(edu, 0, EDU_DMA_SPACE);
	}
	ret = vfio_pci_core_write(vdev, buf, count, ppos);
	mutex_unlock(&edu->lock);
	edu_mig_bar_write_end(&edu->mig);
	return ret;
}

static int edu_log_mmap(struct vfio_device *vdev, struct vm_area_struct *vma)
{
	unsigned int index = vma->vm_pgoff >> (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT);

	/* Every register write must pass through edu_log_write. */
	if (index == VFIO_PCI_BAR0_REGION_INDEX)
		return -EINVAL;
	return vfio_pci_core_mmap(vdev, vma);
}

static long edu_log_ioctl(struct vfio_device *vdev, unsigned int cmd, unsigned long arg)
{
	/* An ioeventfd writes BAR0 behind our back. */
	if (cmd == VFIO_DEVICE_IOEVENTFD)
		return -ENOTTY;
	/* edu has no reset of its own: the driver's, for migration and the log (edu_log_mig.c). */
	if (cmd == VFIO_DEVICE_RESET)
		return edu_mig_device_reset(&to_edu(vdev)->mig);
	return vfio_pci_core_ioctl(vdev, cmd, arg);
}

static void edu_log_free(struct edu_log_device *edu)
{
	bitmap_free(edu->dirty);
	kfree(edu->ranges);
	edu->dirty = NULL;
	edu->ranges = NULL;
	edu->nranges = 0;
	edu->logging = false;
}

static int edu_log_start(struct vfio_device *vdev, struct rb_root_cached *ranges, u32 nnodes,
			 u64 *page_size)
{
	struct edu_log_device *edu = to_edu(vdev);
	struct interval_tree_node *node;
	unsigned long min;
	u32 i = 0;
	int ret = 0;

	if (*page_size < SZ_4K || !is_power_of_2(*page_size) || *page_size > EDU_DMA_SPACE)
		return -EINVAL;
	min = READ_ONCE(min_page_size);
	if (is_power_of_2(min) && min >= SZ_4K && min <= EDU_DMA_SPACE && *page_size < min)
		*page_size = min;
	if (!nnodes || nnodes > EDU_LOG_MAX_RANGES)
		return -E2BIG;

	mutex_lock(&edu->lock);
	if (edu->logging) {
		if (!edu_has_bug(EDU_BUG_SECOND_START)) {
			ret = -EBUSY;
			goto out;
		}
		/* bug=second-start: the second START is taken, and the log is lost. */
		edu_log_free(edu);
	}
	/* bug=ignore-page-size: *page_size goes back unchanged, a lie about what is logged. */
	edu->page_size = edu_has_bug(EDU_BUG_IGNORE_PAGE_SIZE) ? EDU_BUG_LOG_PAGE : *page_size;
	edu->nbits = EDU_DMA_SPACE / edu->page_size;
	edu->dirty = bitmap_zalloc(edu->nbits, GFP_KERNEL);
	edu->ranges = kcalloc(nnodes, sizeof(*edu->ranges), GFP_KERNEL);
	if (!edu->dirty || !edu->ranges) {
		edu_log_free(edu);
		ret = -ENOMEM;
		goto out;
	}
	for (node = interval_tree_iter_first(ranges, 0, ULONG_MAX); node && i < nnodes;
	     node = interval_tree_iter_next(node, 0, ULONG_MAX), i++) {
		edu->ranges[i].start = node->start;
		edu->ranges[i].last = node->last;
	}
	edu->nranges = i;
	/* bug=drop-ranges: accepted, but only the first few are logged (no combining). */
	if (edu_has_bug(EDU_BUG_DROP_RANGES))
		edu->nranges = min_t(u32, edu->nranges, EDU_BUG_RANGES);
	edu->logging = true;
	dev_info(&edu->core.pdev->dev, "DMA logging started: %u ranges, page size %llu\n",
		 edu->nranges, edu->page_size);
out:
	mutex_unlock(&edu->lock);
	return ret;
}

static int edu_log_stop(struct vfio_device *vdev)
{
	struct edu_log_device *edu = to_edu(vdev);

	mutex_lock(&edu->lock);
	edu_log_free(edu);
	mutex_unlock(&edu->lock);
	return 0;
}

/* The log_ops STOP: bug=stop-noop answers 0 and keeps logging (close_device still stops it). */
static int edu_log_stop_op(struct vfio_device *vdev)
{
	if (edu_has_bug(EDU_BUG_STOP_NOOP))
		return 0;
	return edu_log_stop(vdev);
}

#ifdef CONFIG_X86_64
/*
 * bug=zero-bitmap: what a driver that "initialises" the caller's bitmap does, zeroing the words
 * of [iova, iova + length). log_ops never see the user's bitmap (iova_bitmap only sets bits), so
 * this test-only hack reads the ioctl's argument from the syscall registers (the third, rdx) to
 * find it: struct vfio_device_feature, its data the struct vfio_device_feature_dma_logging_report.
 */
static void edu_zero_user_bitmap(unsigned long iova, unsigned long length)
{
	struct vfio_device_feature_dma_logging_report rep;
	void __user *arg = (void __user *)current_pt_regs()->dx;
	u64 first, last;

	if (copy_from_user(&rep, arg + offsetof(struct vfio_device_feature, data), sizeof(rep)) ||
	    !rep.page_size || iova < rep.iova)
		return;
	first = (iova - rep.iova) / rep.page_size / 64;
	last = (iova + length - 1 - rep.iova) / rep.page_size / 64;
	if (clear_user(u64_to_user_ptr(rep.bitmap + first * 8), (last - first + 1) * 8))
		pr_warn_ratelimited("edu_log_vfio: bug=zero-bitmap could not write the bitmap\n");
}
#else
static void edu_zero_user_bitmap(unsigned long iova, unsigned long length)
{
	pr_warn_once("edu_log_vfio: bug=zero-bitmap is implemented for x86-64 only\n");
}
#endif

static int edu_log_read_and_clear(struct vfio_device *vdev, unsigned long iova,
				  unsigned long length, struct iova_bitmap *dirty)
{
	struct edu_log_device *edu = to_edu(vdev);
	unsigned long bit, first, end;
	int ret = 0;

	mutex_lock(&edu->lock);
	if (!edu->logging) {
		ret = -EINVAL;
		goto out;
	}
	if (!length || iova >= EDU_DMA_SPACE)
		goto out;
	first = iova / edu->page_size;
	end = min_t(u64, (iova + length - 1) / edu->page_size + 1, edu->nbits);
	/* The broken loops: one page short, one page past. */
	if (edu_has_bug(EDU_BUG_DROP_LAST_PAGE) && end > first)
		end--;
	if (edu_has_bug(EDU_BUG_OUTSIDE_RANGE) && end < edu->nbits)
		end++;
	if (edu_has_bug(EDU_BUG_ZERO_BITMAP))
		edu_zero_user_bitmap(iova, length);
	for_each_set_bit_from(first, edu->dirty, end) {
		bit = first;
		iova_bitmap_set(dirty, bit * edu->page_size, edu->page_size);
		if (!edu_has_bug(EDU_BUG_NO_CLEAR))
			clear_bit(bit, edu->dirty);
	}
	/* A DMA still in flight may write after this report: keep its pages for the next one. */
	if (edu->pending) {
		if (edu_dma_running(edu))
			edu_mark(edu, edu->pending_iova, edu->pending_length);
		else
			edu->pending = false;
	}
out:
	mutex_unlock(&edu->lock);
	return ret;
}

static const struct vfio_log_ops edu_log_ops = {
	.log_start = edu_log_start,
	.log_stop = edu_log_stop_op,
	.log_read_and_clear = edu_log_read_and_clear,
};

static int edu_log_init_dev(struct vfio_device *vdev)
{
	struct edu_log_device *edu = to_edu(vdev);

	mutex_init(&edu->lock);
	vdev->log_ops = &edu_log_ops;
	edu_mig_init(&edu->mig, &edu->core);
	return vfio_pci_core_init_dev(vdev);
}

static void edu_log_release_dev(struct vfio_device *vdev)
{
	struct edu_log_device *edu = to_edu(vdev);

	edu_log_free(edu);
	mutex_destroy(&edu->lock);
	edu_mig_release(&edu->mig);
	vfio_pci_core_release_dev(vdev);
}

static int edu_log_open_device(struct vfio_device *vdev)
{
	struct edu_log_device *edu = to_edu(vdev);
	int ret;

	ret = vfio_pci_core_enable(&edu->core);
	if (ret)
		return ret;
	mutex_lock(&edu->lock);
	edu->src = edu->dst = edu->cnt = 0;
	edu->pending = false;
	mutex_unlock(&edu->lock);
	vfio_pci_core_finish_enable(&edu->core);
	/*
	 * finish_enable probes which BARs can be mmap'ed; clearing BAR0 afterwards keeps
	 * REGION_INFO from offering it (edu_log_mmap refuses it regardless).
	 */
	edu->core.bar_mmap_supported[0] = false;
	edu_mig_open(&edu->mig);
	return 0;
}

static void edu_log_close_device(struct vfio_device *vdev)
{
	edu_log_stop(vdev);
	edu_mig_close(&to_edu(vdev)->mig);
	vfio_pci_core_close_device(vdev);
}

static const struct vfio_device_ops edu_log_vfio_ops = {
	.name = "edu-log-vfio-pci",
	.init = edu_log_init_dev,
	.release = edu_log_release_dev,
	.open_device = edu_log_open_device,
	.close_device = edu_log_close_device,
	.ioctl = edu_log_ioctl,
	.device_feature = vfio_pci_core_ioctl_feature,
	.read = vfio_pci_core_read,
	.write = edu_log_write,
	.mmap = edu_log_mmap,
	.request = vfio_pci_core_request,
	.match = vfio_pci_core_match,
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
	/* Mandatory on kernels with IOMMUFD (6.2+); the 7.3 test kernel has it. */
	.bind_iommufd = vfio_iommufd_physical_bind,
	.unbind_iommufd = vfio_iommufd_physical_unbind,
	.attach_ioas = vfio_iommufd_physical_attach_ioas,
	.detach_ioas = vfio_iommufd_physical_detach_ioas,
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
	/* As vfio-pci has them, so PASID attach answers as it does there. */
	.pasid_attach_ioas = vfio_iommufd_physical_pasid_attach_ioas,
	.pasid_detach_ioas = vfio_iommufd_physical_pasid_detach_ioas,
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 19, 0)
	/* GET_REGION_INFO moved into the core with this op (not in 6.12, in 7.3). */
	.get_region_info_caps = vfio_pci_ioctl_get_region_info,
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 17, 0)
	/* vfio_pci_core_match calls it unconditionally (VF tokens, 6.17): without it, an oops. */
	.match_token_uuid = vfio_pci_core_match_token_uuid,
#endif
};

/* For edu_log_mig.c, which cannot see struct edu_log_device. */
struct edu_mig *edu_mig_of(struct vfio_device *vdev)
{
	return &to_edu(vdev)->mig;
}

/* A reset forgets the log (as a function reset does to a device's tracker); logging goes on. */
void edu_log_reset(struct vfio_device *vdev)
{
	struct edu_log_device *edu = to_edu(vdev);

	mutex_lock(&edu->lock);
	if (edu->logging)
		bitmap_zero(edu->dirty, edu->nbits);
	edu->pending = false;
	mutex_unlock(&edu->lock);
}

static int edu_log_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct edu_log_device *edu;
	int ret;

	edu = vfio_alloc_device(edu_log_device, core.vdev, &pdev->dev, &edu_log_vfio_ops);
	if (IS_ERR(edu))
		return PTR_ERR(edu);
	dev_set_drvdata(&pdev->dev, &edu->core);
	ret = vfio_pci_core_register_device(&edu->core);
	if (ret) {
		vfio_put_device(&edu->core.vdev);
		return ret;
	}
	return 0;
}

static void edu_log_remove(struct pci_dev *pdev)
{
	struct vfio_pci_core_device *core = dev_get_drvdata(&pdev->dev);

	vfio_pci_core_unregister_device(core);
	vfio_put_device(&core->vdev);
}

static const struct pci_device_id edu_log_table[] = {
	{ PCI_DEVICE(0x1234, 0x11e8) },
	{}
};
MODULE_DEVICE_TABLE(pci, edu_log_table);

static struct pci_driver edu_log_driver = {
	.name = "edu_log_vfio",
	.id_table = edu_log_table,
	.probe = edu_log_probe,
	.remove = edu_log_remove,
	.driver_managed_dma = true,
};
module_pci_driver(edu_log_driver);

MODULE_LICENSE("GPL");
/* iova_bitmap_set moved into iommufd (6.7, namespace IOMMUFD, a string from 6.13). */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
MODULE_IMPORT_NS("IOMMUFD");
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
MODULE_IMPORT_NS(IOMMUFD);
#endif
MODULE_DESCRIPTION("vfio-pci variant driver for QEMU edu with DMA logging (vfio-dirty tests)");
