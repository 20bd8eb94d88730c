//! The `bounce.v1.Render` service: submit, master, attach, cancel, list, delete.
//! Validation and every index read or write run on blocking threads.

use std::pin::Pin;
use std::sync::Arc;

use bounce_proto::v1::render_server::Render;
use bounce_proto::v1::{
    AttachRequest, CancelRequest, CancelResponse, DeleteRequest, DeleteResponse, JobEvent,
    ListJobsRequest, ListJobsResponse, MasterRequest, SubmitRequest,
};
use futures::Stream;
use prost::Message;
use tonic::{Request, Response, Status};

use super::auth::project_of;
use super::jobs::{self, JobRequest, Jobs};
use super::store::blocking;

/// The stream of a job's events.
pub(crate) type EventStream = Pin<Box<dyn Stream<Item = Result<JobEvent, Status>> + Send>>;

/// The render service: validates, queues, streams.
pub(crate) struct RenderService {
    jobs: Arc<Jobs>,
}

impl RenderService {
    pub(crate) fn new(jobs: Arc<Jobs>) -> Self {
        RenderService { jobs }
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
        let jobs = self.jobs.clone();
        let job = blocking(move || {
            let session = jobs::session_of(&req, |rate| {
                jobs.options_for(&project, req.backend, rate).limits
            })?;
            let stems = jobs::session_stems(&session);
            let name = session.name.clone();
            let stored = req.encode_to_vec();
            let request = JobRequest::Render {
                session: std::sync::Arc::new(session),
                backend: req.backend,
            };
            jobs.submit(&project, request, &stored, &name, &stems)
        })
        .await?;
        Ok(Response::new(Box::pin(self.jobs.follow(job))))
    }

    async fn master(
        &self,
        request: Request<MasterRequest>,
    ) -> Result<Response<Self::MasterStream>, Status> {
        let project = project_of(&request)?;
        let req = request.into_inner();
        let jobs = self.jobs.clone();
        let job = blocking(move || {
            let (input, _, _) = jobs::master_parts(&req)?;
            let name = format!("master {}", input.name);
            jobs.submit(
                &project,
                JobRequest::Master(Box::new(req.clone())),
                &req.encode_to_vec(),
                &name,
                std::slice::from_ref(&input),
            )
        })
        .await?;
        Ok(Response::new(Box::pin(self.jobs.follow(job))))
    }

    async fn attach(
        &self,
        request: Request<AttachRequest>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let project = project_of(&request)?;
        let id = request.into_inner().job_id;
        let jobs = self.jobs.clone();
        let job = blocking(move || jobs.get(&project, &id)).await?;
        Ok(Response::new(Box::pin(self.jobs.follow(job))))
    }

    async fn cancel(
        &self,
        request: Request<CancelRequest>,
    ) -> Result<Response<CancelResponse>, Status> {
        let project = project_of(&request)?;
        let id = request.into_inner().job_id;
        let jobs = self.jobs.clone();
        Ok(Response::new(
            blocking(move || jobs.cancel(&project, &id)).await?,
        ))
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        let project = project_of(&request)?;
        let req = request.into_inner();
        let jobs = self.jobs.clone();
        Ok(Response::new(
            blocking(move || jobs.list(&project, req.page_size, &req.page_token)).await?,
        ))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let project = project_of(&request)?;
        let id = request.into_inner().job_id;
        let jobs = self.jobs.clone();
        Ok(Response::new(
            blocking(move || jobs.delete(&project, &id)).await?,
        ))
    }
}
