//! The `bounce.v1.Render` service: submit, master, attach, cancel, list.

use std::pin::Pin;
use std::sync::Arc;

use bounce_proto::v1::render_server::Render;
use bounce_proto::v1::{
    AttachRequest, CancelRequest, CancelResponse, JobEvent, ListJobsRequest, ListJobsResponse,
    MasterRequest, SubmitRequest,
};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::auth::project_of;
use super::jobs::{self, JobRequest, Jobs};
use super::store::StemStoreService;
use crate::session::StemRef;

/// The stream of a job's events.
pub(crate) type EventStream = Pin<Box<dyn Stream<Item = Result<JobEvent, Status>> + Send>>;

/// The render service: validates, queues, streams.
pub(crate) struct RenderService {
    jobs: Arc<Jobs>,
    store: StemStoreService,
}

impl RenderService {
    pub(crate) fn new(jobs: Arc<Jobs>, store: StemStoreService) -> Self {
        RenderService { jobs, store }
    }

    /// FAILED_PRECONDITION naming every stem the store lacks.
    fn check_stems(&self, stems: &[StemRef]) -> Result<(), Status> {
        let missing: Vec<String> = stems
            .iter()
            .filter(|s| !s.blake3.as_deref().is_some_and(|h| self.store.has(h)))
            .map(|s| format!("{} ({})", s.name, s.blake3.as_deref().unwrap_or("no hash")))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Status::failed_precondition(format!(
                "stems not uploaded: {}",
                missing.join(", ")
            )))
        }
    }
}

#[tonic::async_trait]
impl Render for RenderService {
    type SubmitStream = EventStream;
    type MasterStream = EventStream;
    type AttachStream = EventStream;

    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<Self::SubmitStream>, Status> {
        let project = project_of(&request)?;
        let req = request.into_inner();
        let session = jobs::session_of(&req, &crate::session::Limits::default())?;
        self.check_stems(&jobs::session_stems(&session))?;
        let job = self
            .jobs
            .submit(&project, JobRequest::Render(req), session.name.clone())?;
        Ok(Response::new(Box::pin(self.jobs.follow(job))))
    }

    async fn master(
        &self,
        request: Request<MasterRequest>,
    ) -> Result<Response<Self::MasterStream>, Status> {
        let project = project_of(&request)?;
        let req = request.into_inner();
        let (input, _, _) = jobs::master_parts(&req)?;
        self.check_stems(std::slice::from_ref(&input))?;
        let job = self.jobs.submit(
            &project,
            JobRequest::Master(req),
            format!("master {}", input.name),
        )?;
        Ok(Response::new(Box::pin(self.jobs.follow(job))))
    }

    async fn attach(
        &self,
        request: Request<AttachRequest>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let project = project_of(&request)?;
        let job = self.jobs.get(&project, &request.get_ref().job_id)?;
        Ok(Response::new(Box::pin(self.jobs.follow(job))))
    }

    async fn cancel(
        &self,
        request: Request<CancelRequest>,
    ) -> Result<Response<CancelResponse>, Status> {
        let project = project_of(&request)?;
        Ok(Response::new(
            self.jobs.cancel(&project, &request.get_ref().job_id)?,
        ))
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        let project = project_of(&request)?;
        Ok(Response::new(ListJobsResponse {
            jobs: self.jobs.list(&project),
        }))
    }
}
