//! The fair scheduler: projects take turns (round-robin), each within its running
//! limit, all within the server's `max_concurrent_jobs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::job::Job;

#[derive(Default)]
pub(crate) struct Sched {
    pub(crate) queues: HashMap<String, VecDeque<Arc<Job>>>,
    /// Projects with queued jobs, in turn order (`in_order` mirrors it, so
    /// enqueueing stays O(1) with many projects).
    order: VecDeque<String>,
    in_order: HashSet<String>,
    pub(crate) running: usize,
    pub(crate) running_by: HashMap<String, usize>,
    queued: usize,
}

impl Sched {
    pub(crate) fn enqueue(&mut self, job: Arc<Job>) {
        let project = job.project.clone();
        self.queues
            .entry(project.clone())
            .or_default()
            .push_back(job);
        self.queued += 1;
        if self.in_order.insert(project.clone()) {
            self.order.push_back(project);
        }
    }

    pub(crate) fn queued_total(&self) -> usize {
        self.queued
    }

    pub(crate) fn queued_of(&self, project: &str) -> usize {
        self.queues.get(project).map_or(0, VecDeque::len)
    }

    /// Takes a queued job out (cancel); true when it was there.
    pub(crate) fn remove(&mut self, project: &str, id: &str) -> bool {
        let Some(q) = self.queues.get_mut(project) else {
            return false;
        };
        let before = q.len();
        q.retain(|j| j.id != id);
        let removed = before - q.len();
        self.queued -= removed;
        removed > 0
    }

    /// The next job to run, or None; `limit_of` gives a project's running limit.
    pub(crate) fn pick(
        &mut self,
        max_concurrent: usize,
        limit_of: impl Fn(&str) -> Option<usize>,
    ) -> Option<Arc<Job>> {
        if self.running >= max_concurrent {
            return None;
        }
        for _ in 0..self.order.len() {
            let project = self.order.pop_front()?;
            let running = self.running_by.get(&project).copied().unwrap_or(0);
            let queued = self.queues.get(&project).is_some_and(|q| !q.is_empty());
            if !queued {
                self.in_order.remove(&project);
                continue; // dropped from the rotation until it queues again
            }
            self.order.push_back(project.clone());
            if limit_of(&project).is_some_and(|l| running >= l) {
                continue;
            }
            let job = self
                .queues
                .get_mut(&project)
                .and_then(VecDeque::pop_front)?;
            self.queued -= 1;
            self.running += 1;
            *self.running_by.entry(project).or_default() += 1;
            return Some(job);
        }
        None
    }

    /// A running job ended (finished, failed, or stopped).
    pub(crate) fn release(&mut self, project: &str) {
        self.running = self.running.saturating_sub(1);
        if let Some(n) = self.running_by.get_mut(project) {
            *n = n.saturating_sub(1);
        }
    }
}
