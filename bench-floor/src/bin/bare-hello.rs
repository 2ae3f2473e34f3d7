//! The least an HTTP Lambda function in Rust can be: lambda_http answering "hello".

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async {
        Ok::<_, Error>(
            Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .body(Body::from("hello"))?,
        )
    }))
    .await
}
