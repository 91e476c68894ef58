/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the two halves of the edu-log test driver share: edu_log_vfio.c (the vfio-pci variant
 * driver and its DMA logging) and edu_log_mig.c (its VFIO live migration).
 */
#ifndef EDU_LOG_H
#define EDU_LOG_H

#include <linux/fs.h>
#include <linux/mutex.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>

struct edu_mig_file;

/* Migration state of one edu-log device; embedded in struct edu_log_device. */
struct edu_mig {
	/* Guards everything below. Taken before edu_log_device's lock, never after it. */
	struct mutex lock;
	/* The device this state belongs to. */
	struct vfio_pci_core_device *core;
	/* BAR0 mapped while the device is open: the registers a snapshot reads and a resume writes. */
	void __iomem *bar;
	enum vfio_device_mig_state state;
	/* The open save (RUNNING -> PRE_COPY, STOP -> STOP_COPY) or resume session, if any. */
	struct edu_mig_file *saving, *resuming;
	/*
	 * Since the last snapshot: the DMA registers were written (running state: new dirty data),
	 * the liveness or status register was (configuration: new initial data, REINIT on 7.1+).
	 */
	bool dirty, reconfigured;
};

/* edu_log_mig.c */
void edu_mig_init(struct edu_mig *mig, struct vfio_pci_core_device *core);
void edu_mig_open(struct edu_mig *mig);
void edu_mig_close(struct edu_mig *mig);
void edu_mig_release(struct edu_mig *mig);
int edu_mig_bar_write_begin(struct edu_mig *mig, u64 off, size_t count);
void edu_mig_bar_write_end(struct edu_mig *mig);
int edu_mig_device_reset(struct edu_mig *mig);

/* edu_log_vfio.c */
struct edu_mig *edu_mig_of(struct vfio_device *vdev);
void edu_log_reset(struct vfio_device *vdev);

#endif
