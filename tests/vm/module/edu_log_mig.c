// SPDX-License-Identifier: GPL-2.0
/*
 * edu_log_mig: VFIO live migration (struct vfio_migration_ops) for the edu-log test driver, so
 * vfio-dirty's real-kernel tests can drive the migration state machine together with device DMA
 * logging on a device that really does DMA.
 *
 * Migration flags: STOP_COPY | P2P, plus PRE_COPY on kernels that have it (6.2+). edu's state is
 * what its registers show: the liveness word (0x04), the interrupt-enable bit of the status
 * register (0x20) and the DMA source, destination and count (0x80, 0x88, 0x90). Its 4 KiB buffer
 * is not in the state: only edu's own DMA reaches it, and the driver cannot DMA (the IOMMU
 * domain belongs to user space). Each snapshot of that state is one struct edu_mig_record on the
 * data fd:
 *
 *   RUNNING -> PRE_COPY        a save session opens with one record (the initial data)
 *   VFIO_MIG_GET_PRECOPY_INFO  when a register of the state was written since the last record,
 *                              a new record is appended. After a DMA register write (running
 *                              state) it is dirty_bytes. After a liveness or status write (the
 *                              device's configuration) it is, with the 7.1 PRECOPY_INFOv2 opt-in,
 *                              new initial data (VFIO_PRECOPY_INFO_REINIT: initial_bytes grows
 *                              again); without the opt-in, dirty_bytes too (flags as passed in)
 *   read()                     returns the records in order; at the end of the data in PRE_COPY
 *                              it fails with ENOMSG (the uAPI's temporary end of stream)
 *   PRE_COPY_P2P -> STOP_COPY  the final record is appended; read() then ends with 0
 *   STOP -> STOP_COPY          a session with just the final record (no pre-copy)
 *   STOP -> RESUMING           a resume session; RESUMING -> STOP loads the last whole record
 *
 * Stopping: the arcs into STOP (from RUNNING_P2P) and into STOP_COPY (from PRE_COPY_P2P) wait
 * for a DMA still running to finish; from then on, and in STOP_COPY, RESUMING and ERROR, BAR0
 * writes are refused (EBUSY; EIO in ERROR), so the device issues no DMA until it runs again.
 *
 * ERROR and reset: the module parameter mig_fail_next makes the next arc fail with EIO and leave
 * the device in ERROR, from which only VFIO_DEVICE_RESET leads out. edu has no reset of its own
 * (no FLR, no PM capability), so this driver does one for VFIO_DEVICE_RESET: it waits for DMA,
 * ends the data sessions, forgets the DMA log (what a function reset does to a real device's
 * tracker) and goes back to RUNNING.
 */
#include <linux/anon_inodes.h>
#include <linux/delay.h>
#include <linux/file.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include "edu_log.h"

#define EDU_REG_LIVENESS 0x04
#define EDU_REG_STATUS 0x20
#define EDU_STATUS_IRQ_ENABLE 0x80
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_CNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_DMA_RUNNING 0x1

#define EDU_MIG_MAGIC 0x4d554445 /* "EDUM" */
#define EDU_MIG_VERSION 1
/* A session holds at most this much data: a 48-byte record per snapshot, about 85 of them. */
#define EDU_MIG_FILE_MAX 4096
/* edu's DMA takes up to about 100 ms under TCG; give it ten times that to finish. */
#define EDU_DMA_QUIESCE_MS 1000

static int mig_fail_next;
module_param(mig_fail_next, int, 0644);
MODULE_PARM_DESC(mig_fail_next,
		 "fail the next migration arc with EIO and leave the device in ERROR (test only)");

/* One snapshot of edu's state, as it travels on the data fd (little-endian, 48 bytes). */
struct edu_mig_record {
	__le32 magic;
	__le16 version;
	__le16 length; /* sizeof(struct edu_mig_record) */
	__le32 liveness;
	__le32 status;
	__le64 dma_src;
	__le64 dma_dst;
	__le64 dma_cnt;
	/* Which snapshot of its session this is: 0 first, then one more per new record. */
	__le64 seq;
};

struct edu_mig_file {
	struct file *filp;
	struct edu_mig *mig;
	/* Guards the fields below against concurrent read/write/ioctl on the fd. */
	struct mutex lock;
	/* The session ended (state left the data transfer states, reset, device closed). */
	bool disabled;
	/* Save: the records so far; resume: what user space wrote. */
	u8 data[EDU_MIG_FILE_MAX];
	size_t len;
	/* Save: where the current initial data ends (records before it are initial, after it dirty). */
	size_t initial_end;
	u64 seq;
};

static bool edu_mig_stopped(enum vfio_device_mig_state s)
{
	return s == VFIO_DEVICE_STATE_STOP || s == VFIO_DEVICE_STATE_STOP_COPY ||
	       s == VFIO_DEVICE_STATE_RESUMING;
}

/* Waits for a DMA edu is still doing; -ETIMEDOUT when it does not finish. */
static int edu_mig_quiesce(struct edu_mig *mig)
{
	unsigned int waited = 0;

	if (!mig->bar)
		return 0;
	while (ioread32(mig->bar + EDU_REG_DMA_CMD) & EDU_DMA_RUNNING) {
		if (waited >= EDU_DMA_QUIESCE_MS)
			return -ETIMEDOUT;
		usleep_range(1000, 2000);
		waited++;
	}
	return 0;
}

static void edu_mig_snapshot(struct edu_mig *mig, struct edu_mig_record *r, u64 seq)
{
	memset(r, 0, sizeof(*r));
	r->magic = cpu_to_le32(EDU_MIG_MAGIC);
	r->version = cpu_to_le16(EDU_MIG_VERSION);
	r->length = cpu_to_le16(sizeof(*r));
	r->seq = cpu_to_le64(seq);
	if (!mig->bar)
		return;
	r->liveness = cpu_to_le32(ioread32(mig->bar + EDU_REG_LIVENESS));
	r->status = cpu_to_le32(ioread32(mig->bar + EDU_REG_STATUS) & EDU_STATUS_IRQ_ENABLE);
	/* edu answers 8-byte reads at 0x80 and above; a 4-byte read there gives the low half. */
	r->dma_src = cpu_to_le64(readq(mig->bar + EDU_REG_DMA_SRC));
	r->dma_dst = cpu_to_le64(readq(mig->bar + EDU_REG_DMA_DST));
	r->dma_cnt = cpu_to_le64(readq(mig->bar + EDU_REG_DMA_CNT));
}

/* Appends a snapshot to a save session. Caller holds mig->lock. */
static int edu_mig_append(struct edu_mig_file *migf)
{
	struct edu_mig_record r;

	edu_mig_snapshot(migf->mig, &r, migf->seq);
	mutex_lock(&migf->lock);
	if (migf->len + sizeof(r) > sizeof(migf->data)) {
		mutex_unlock(&migf->lock);
		return -ENOSPC;
	}
	memcpy(migf->data + migf->len, &r, sizeof(r));
	migf->len += sizeof(r);
	migf->seq++;
	mutex_unlock(&migf->lock);
	migf->mig->dirty = migf->mig->reconfigured = false;
	return 0;
}

static void edu_mig_disable(struct edu_mig_file **slot)
{
	struct edu_mig_file *migf = *slot;

	if (!migf)
		return;
	mutex_lock(&migf->lock);
	migf->disabled = true;
	mutex_unlock(&migf->lock);
	fput(migf->filp);
	*slot = NULL;
}

static void edu_mig_disable_files(struct edu_mig *mig)
{
	edu_mig_disable(&mig->saving);
	edu_mig_disable(&mig->resuming);
}

static int edu_mig_release_file(struct inode *inode, struct file *filp)
{
	struct edu_mig_file *migf = filp->private_data;

	mutex_destroy(&migf->lock);
	kfree(migf);
	return 0;
}

static ssize_t edu_mig_read(struct file *filp, char __user *buf, size_t len, loff_t *pos)
{
	struct edu_mig_file *migf = filp->private_data;
	struct edu_mig *mig = migf->mig;
	bool precopy;
	ssize_t ret;

	/* A stream: no offsets (stream_open), as the uAPI wants for the data fd. */
	if (pos)
		return -ESPIPE;
	pos = &filp->f_pos;
	mutex_lock(&mig->lock);
	precopy = mig->state != VFIO_DEVICE_STATE_STOP_COPY;
	mutex_lock(&migf->lock);
	if (migf->disabled) {
		ret = -ENODEV;
	} else if (*pos >= migf->len) {
		/* PRE_COPY's end of data is temporary (ENOMSG); STOP_COPY's is the end of stream. */
		ret = precopy ? -ENOMSG : 0;
	} else {
		len = min_t(size_t, len, migf->len - *pos);
		if (copy_to_user(buf, migf->data + *pos, len)) {
			ret = -EFAULT;
		} else {
			*pos += len;
			ret = len;
		}
	}
	mutex_unlock(&migf->lock);
	mutex_unlock(&mig->lock);
	return ret;
}

#ifdef VFIO_MIGRATION_PRE_COPY
/* Checks cmd and argsz and reads the caller's struct; 7.1+ then zeroes flags after the v2 opt-in. */
static int edu_mig_precopy_args(struct edu_mig *mig, unsigned int cmd, unsigned long arg,
				struct vfio_precopy_info *info)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 1, 0)
	return vfio_check_precopy_ioctl(&mig->core->vdev, cmd, arg, info);
#else
	unsigned long minsz = offsetofend(struct vfio_precopy_info, dirty_bytes);

	if (cmd != VFIO_MIG_GET_PRECOPY_INFO)
		return -ENOTTY;
	if (copy_from_user(info, (void __user *)arg, minsz))
		return -EFAULT;
	return info->argsz < minsz ? -EINVAL : 0;
#endif
}

static long edu_mig_precopy_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct edu_mig_file *migf = filp->private_data;
	struct edu_mig *mig = migf->mig;
	struct vfio_precopy_info info;
	bool reinit = false;
	size_t pos;
	int ret;

	ret = edu_mig_precopy_args(mig, cmd, arg, &info);
	if (ret)
		return ret;
	mutex_lock(&mig->lock);
	if (mig->state != VFIO_DEVICE_STATE_PRE_COPY && mig->state != VFIO_DEVICE_STATE_PRE_COPY_P2P) {
		ret = -EINVAL;
		goto out;
	}
	if (migf->disabled) {
		ret = -ENODEV;
		goto out;
	}
	/* Guest-visible state changed: its snapshot is new data, initial data after a reconfiguration. */
	if (mig->dirty || mig->reconfigured) {
#ifdef VFIO_PRECOPY_INFO_REINIT
		reinit = mig->reconfigured && mig->core->vdev.precopy_info_v2;
#endif
		ret = edu_mig_append(migf);
		if (ret)
			goto out;
	}
	mutex_lock(&migf->lock);
	if (reinit) {
		/* Everything not read yet counts as initial data again (as mlx5 does). */
		migf->initial_end = migf->len;
#ifdef VFIO_PRECOPY_INFO_REINIT
		info.flags |= VFIO_PRECOPY_INFO_REINIT;
#endif
	}
	pos = filp->f_pos;
	info.initial_bytes = migf->initial_end > pos ? migf->initial_end - pos : 0;
	info.dirty_bytes = migf->len - max(pos, migf->initial_end);
	mutex_unlock(&migf->lock);
	ret = copy_to_user((void __user *)arg, &info, offsetofend(struct vfio_precopy_info, dirty_bytes))
		      ? -EFAULT
		      : 0;
out:
	mutex_unlock(&mig->lock);
	return ret;
}
#endif

static const struct file_operations edu_mig_save_fops = {
	.owner = THIS_MODULE,
	.read = edu_mig_read,
#ifdef VFIO_MIGRATION_PRE_COPY
	.unlocked_ioctl = edu_mig_precopy_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
#endif
	.release = edu_mig_release_file,
};

static ssize_t edu_mig_write(struct file *filp, const char __user *buf, size_t len, loff_t *pos)
{
	struct edu_mig_file *migf = filp->private_data;
	ssize_t ret;

	if (pos)
		return -ESPIPE;
	mutex_lock(&migf->lock);
	if (migf->disabled) {
		ret = -ENODEV;
	} else if (len > sizeof(migf->data) - migf->len) {
		ret = -ENOSPC;
	} else if (copy_from_user(migf->data + migf->len, buf, len)) {
		ret = -EFAULT;
	} else {
		migf->len += len;
		filp->f_pos += len;
		ret = len;
	}
	mutex_unlock(&migf->lock);
	return ret;
}

static const struct file_operations edu_mig_resume_fops = {
	.owner = THIS_MODULE,
	.write = edu_mig_write,
	.release = edu_mig_release_file,
};

static struct edu_mig_file *edu_mig_new_file(struct edu_mig *mig, const struct file_operations *fops,
					     int flags)
{
	struct edu_mig_file *migf = kzalloc(sizeof(*migf), GFP_KERNEL_ACCOUNT);

	if (!migf)
		return ERR_PTR(-ENOMEM);
	migf->filp = anon_inode_getfile("edu_log_mig", fops, migf, flags);
	if (IS_ERR(migf->filp)) {
		int rc = PTR_ERR(migf->filp);

		kfree(migf);
		return ERR_PTR(rc);
	}
	stream_open(migf->filp->f_inode, migf->filp);
	mutex_init(&migf->lock);
	migf->mig = mig;
	return migf;
}

/* A new save session with the current state as its initial data. */
static struct file *edu_mig_start_save(struct edu_mig *mig)
{
	struct edu_mig_file *migf;
	int ret;

	edu_mig_disable_files(mig);
	migf = edu_mig_new_file(mig, &edu_mig_save_fops, O_RDONLY);
	if (IS_ERR(migf))
		return ERR_CAST(migf);
	ret = edu_mig_append(migf);
	if (ret) {
		fput(migf->filp);
		return ERR_PTR(ret);
	}
	migf->initial_end = migf->len;
	mig->saving = migf;
	get_file(migf->filp);
	return migf->filp;
}

/* RESUMING -> STOP: the last whole record written is the state to load. */
static int edu_mig_load(struct edu_mig *mig)
{
	struct edu_mig_file *migf = mig->resuming;
	struct edu_mig_record r;
	size_t n;

	mutex_lock(&migf->lock);
	n = migf->len / sizeof(r);
	if (!n || migf->len % sizeof(r)) {
		mutex_unlock(&migf->lock);
		return -EINVAL;
	}
	memcpy(&r, migf->data + (n - 1) * sizeof(r), sizeof(r));
	mutex_unlock(&migf->lock);
	if (le32_to_cpu(r.magic) != EDU_MIG_MAGIC || le16_to_cpu(r.version) != EDU_MIG_VERSION ||
	    le16_to_cpu(r.length) != sizeof(r))
		return -EINVAL;
	if (mig->bar) {
		/* edu stores the complement of what is written to 0x04. */
		iowrite32(~le32_to_cpu(r.liveness), mig->bar + EDU_REG_LIVENESS);
		iowrite32(le32_to_cpu(r.status) & EDU_STATUS_IRQ_ENABLE, mig->bar + EDU_REG_STATUS);
		writeq(le64_to_cpu(r.dma_src), mig->bar + EDU_REG_DMA_SRC);
		writeq(le64_to_cpu(r.dma_dst), mig->bar + EDU_REG_DMA_DST);
		writeq(le64_to_cpu(r.dma_cnt), mig->bar + EDU_REG_DMA_CNT);
	}
	return 0;
}

/* One arc of the state machine (vfio_mig_get_next_state gives only single arcs). */
static struct file *edu_mig_step(struct edu_mig *mig, enum vfio_device_mig_state next)
{
	enum vfio_device_mig_state cur = mig->state;
	struct edu_mig_file *migf;
	int ret;

	/* Into a stopped state: the DMA still running finishes first; nothing starts after. */
	if (cur == VFIO_DEVICE_STATE_RUNNING_P2P && next == VFIO_DEVICE_STATE_STOP) {
		ret = edu_mig_quiesce(mig);
		return ret ? ERR_PTR(ret) : NULL;
	}
	if (cur == VFIO_DEVICE_STATE_STOP && next == VFIO_DEVICE_STATE_STOP_COPY)
		return edu_mig_start_save(mig);
	if (cur == VFIO_DEVICE_STATE_STOP && next == VFIO_DEVICE_STATE_RESUMING) {
		migf = edu_mig_new_file(mig, &edu_mig_resume_fops, O_WRONLY);
		if (IS_ERR(migf))
			return ERR_CAST(migf);
		mig->resuming = migf;
		get_file(migf->filp);
		return migf->filp;
	}
	if (cur == VFIO_DEVICE_STATE_RESUMING && next == VFIO_DEVICE_STATE_STOP) {
		ret = edu_mig_load(mig);
		if (ret)
			return ERR_PTR(ret);
		edu_mig_disable_files(mig);
		return NULL;
	}
	if (cur == VFIO_DEVICE_STATE_STOP_COPY && next == VFIO_DEVICE_STATE_STOP) {
		edu_mig_disable_files(mig);
		return NULL;
	}
#ifdef VFIO_MIGRATION_PRE_COPY
	if ((cur == VFIO_DEVICE_STATE_RUNNING && next == VFIO_DEVICE_STATE_PRE_COPY) ||
	    (cur == VFIO_DEVICE_STATE_RUNNING_P2P && next == VFIO_DEVICE_STATE_PRE_COPY_P2P))
		return edu_mig_start_save(mig);
	if (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P && next == VFIO_DEVICE_STATE_STOP_COPY) {
		ret = edu_mig_quiesce(mig);
		if (!ret && mig->saving)
			ret = edu_mig_append(mig->saving);
		return ret ? ERR_PTR(ret) : NULL;
	}
	if ((cur == VFIO_DEVICE_STATE_PRE_COPY && next == VFIO_DEVICE_STATE_RUNNING) ||
	    (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P && next == VFIO_DEVICE_STATE_RUNNING_P2P)) {
		edu_mig_disable_files(mig);
		return NULL;
	}
#endif
	/* RUNNING <-> RUNNING_P2P, STOP -> RUNNING_P2P, PRE_COPY <-> PRE_COPY_P2P: edu does no P2P. */
	return NULL;
}

static struct file *edu_mig_set_state(struct vfio_device *vdev, enum vfio_device_mig_state target)
{
	struct edu_mig *mig = edu_mig_of(vdev);
	enum vfio_device_mig_state next;
	struct file *res = NULL;
	int ret;

	mutex_lock(&mig->lock);
	while (mig->state != target) {
		ret = vfio_mig_get_next_state(vdev, mig->state, target, &next);
		if (ret) {
			res = ERR_PTR(ret);
			break;
		}
		if (mig_fail_next) {
			mig_fail_next = 0;
			edu_mig_disable_files(mig);
			mig->state = VFIO_DEVICE_STATE_ERROR;
			res = ERR_PTR(-EIO);
			break;
		}
		res = edu_mig_step(mig, next);
		if (IS_ERR(res))
			break;
		mig->state = next;
		/* Only the last arc may open a data fd (the core never asks for more). */
		if (WARN_ON(res && next != target)) {
			fput(res);
			res = ERR_PTR(-EINVAL);
			break;
		}
	}
	mutex_unlock(&mig->lock);
	return res;
}

static int edu_mig_get_state(struct vfio_device *vdev, enum vfio_device_mig_state *state)
{
	struct edu_mig *mig = edu_mig_of(vdev);

	mutex_lock(&mig->lock);
	*state = mig->state;
	mutex_unlock(&mig->lock);
	return 0;
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
static int edu_mig_get_data_size(struct vfio_device *vdev, unsigned long *stop_copy_length)
{
	*stop_copy_length = sizeof(struct edu_mig_record);
	return 0;
}
#endif

static const struct vfio_migration_ops edu_mig_ops = {
	.migration_set_state = edu_mig_set_state,
	.migration_get_state = edu_mig_get_state,
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
	.migration_get_data_size = edu_mig_get_data_size,
#endif
};

void edu_mig_init(struct edu_mig *mig, struct vfio_pci_core_device *core)
{
	mutex_init(&mig->lock);
	mig->core = core;
	mig->state = VFIO_DEVICE_STATE_RUNNING;
	core->vdev.mig_ops = &edu_mig_ops;
	core->vdev.migration_flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P;
#ifdef VFIO_MIGRATION_PRE_COPY
	core->vdev.migration_flags |= VFIO_MIGRATION_PRE_COPY;
#endif
}

void edu_mig_open(struct edu_mig *mig)
{
	mutex_lock(&mig->lock);
	mig->bar = pci_iomap(mig->core->pdev, 0, 0);
	mig->state = VFIO_DEVICE_STATE_RUNNING;
	mig->dirty = mig->reconfigured = false;
	mutex_unlock(&mig->lock);
}

/* The device's last close: sessions end and the next user finds it RUNNING (as mlx5 does). */
void edu_mig_close(struct edu_mig *mig)
{
	mutex_lock(&mig->lock);
	edu_mig_disable_files(mig);
	mig->state = VFIO_DEVICE_STATE_RUNNING;
	if (mig->bar)
		pci_iounmap(mig->core->pdev, mig->bar);
	mig->bar = NULL;
	mutex_unlock(&mig->lock);
}

void edu_mig_release(struct edu_mig *mig)
{
	mutex_destroy(&mig->lock);
}

/*
 * A BAR0 write of `count` bytes at `off`, before it reaches edu: refused while the device is
 * stopped (EBUSY) or broken (EIO); otherwise noted when it changes the migrated state. On success
 * the migration lock stays held until edu_mig_bar_write_end(), so no arc into a stopped state can
 * come between the check and the write reaching edu.
 */
int edu_mig_bar_write_begin(struct edu_mig *mig, u64 off, size_t count)
{
	u64 end = off + count;

	mutex_lock(&mig->lock);
	if (mig->state == VFIO_DEVICE_STATE_ERROR || edu_mig_stopped(mig->state)) {
		int ret = mig->state == VFIO_DEVICE_STATE_ERROR ? -EIO : -EBUSY;

		mutex_unlock(&mig->lock);
		return ret;
	}
	if ((off < EDU_REG_LIVENESS + 4 && end > EDU_REG_LIVENESS) ||
	    (off < EDU_REG_STATUS + 4 && end > EDU_REG_STATUS))
		mig->reconfigured = true;
	if (off < EDU_REG_DMA_CMD && end > EDU_REG_DMA_SRC)
		mig->dirty = true;
	return 0;
}

void edu_mig_bar_write_end(struct edu_mig *mig)
{
	mutex_unlock(&mig->lock);
}

/* VFIO_DEVICE_RESET: see the header comment. */
int edu_mig_device_reset(struct edu_mig *mig)
{
	int ret;

	mutex_lock(&mig->lock);
	ret = edu_mig_quiesce(mig);
	edu_mig_disable_files(mig);
	mig->state = VFIO_DEVICE_STATE_RUNNING;
	mig->dirty = mig->reconfigured = false;
	mutex_unlock(&mig->lock);
	edu_log_reset(&mig->core->vdev);
	return ret;
}
