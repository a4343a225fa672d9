//! The books database: every book in one Raft KV group, and the `Books`
//! service over it.
//!
//! Keys: `book/<id>` holds the book as JSON; `title/<title key>` holds the
//! id of the book with that title (`tartu_core::title_key`: trimmed,
//! lower-case, inner spaces collapsed), so a checkout's titles resolve with
//! one multi-key read. Every change of a book and of its title index is one
//! transaction of the store, guarded by compares on what was read, so
//! concurrent writers never leave the index pointing at the wrong book.

use crate::client::ClientError;
use crate::kv::cmd;
use crate::shop::rpc::kv_error;
use crate::shop::Store;
use crate::tartu::{book_from_pb, book_to_pb};
use crate::tartu_pb::{self as pb, books_server::Books};
use tartu_core::{title_key, Book};
use tonic::{Request, Response, Status};

pub fn book_key(id: &str) -> String {
    format!("book/{id}")
}

pub fn title_index_key(title: &str) -> String {
    format!("title/{}", title_key(title))
}

/// An error of the books database: the store's, or a business answer.
#[derive(Debug, thiserror::Error)]
pub enum BooksError {
    #[error("{0}")]
    Store(#[from] ClientError),
    #[error("no book with id '{0}'")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("a stored book is not valid JSON: {0}")]
    Corrupt(String),
}

impl From<BooksError> for Status {
    fn from(e: BooksError) -> Status {
        match e {
            BooksError::Store(e) => kv_error(e),
            BooksError::NotFound(m) => Status::not_found(format!("no book with id '{m}'")),
            BooksError::Conflict(m) => Status::failed_precondition(m),
            BooksError::Invalid(m) => Status::invalid_argument(m),
            BooksError::Corrupt(m) => Status::internal(m),
        }
    }
}

fn parse(v: &str) -> Result<Book, BooksError> {
    serde_json::from_str(v).map_err(|e| BooksError::Corrupt(e.to_string()))
}

fn json(b: &Book) -> String {
    serde_json::to_string(b).expect("a book serialises")
}

/// The books database, as a library over the store (the services and the
/// orchestrator read it directly; the `Books` service exposes it).
#[derive(Clone)]
pub struct BooksDb {
    pub store: Store,
}

impl BooksDb {
    pub fn new(store: Store) -> BooksDb {
        BooksDb { store }
    }

    /// Every book, ordered by id.
    pub async fn list(&self) -> Result<Vec<Book>, BooksError> {
        let pairs = self.store.client().scan("book/").await?;
        pairs.iter().map(|(_, v)| parse(v)).collect()
    }

    pub async fn get(&self, id: &str) -> Result<Option<Book>, BooksError> {
        match self.store.client().get(&book_key(id)).await? {
            Some(v) => Ok(Some(parse(&v)?)),
            None => Ok(None),
        }
    }

    /// The books with these titles (None for a title no book has), in order.
    pub async fn by_titles(&self, titles: &[String]) -> Result<Vec<Option<Book>>, BooksError> {
        if titles.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = titles.iter().map(|t| title_index_key(t)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut c = self.store.client();
        let ids = c.read(&refs).await?;
        let book_keys: Vec<String> = ids.iter().flatten().map(|id| book_key(id)).collect();
        let refs: Vec<&str> = book_keys.iter().map(String::as_str).collect();
        let mut books = if refs.is_empty() {
            Vec::new()
        } else {
            c.read(&refs).await?
        }
        .into_iter();
        let mut out = Vec::new();
        for id in &ids {
            out.push(match id {
                None => None,
                Some(_) => match books.next().flatten() {
                    Some(v) => Some(parse(&v)?),
                    // Deleted between the two reads: as if unknown.
                    None => None,
                },
            });
        }
        Ok(out)
    }

    /// Creates or replaces the book `b.id` (`must_exist`: only replaces).
    /// Fails with `Conflict` if another book has its title.
    pub async fn set(&self, b: &Book, must_exist: bool) -> Result<Book, BooksError> {
        validate(b)?;
        let mut c = self.store.client();
        loop {
            let key = book_key(&b.id);
            let tkey = title_index_key(&b.title);
            let old = c.read(&[&key, &tkey]).await?;
            let (old_book, title_owner) = (&old[0], &old[1]);
            if must_exist && old_book.is_none() {
                return Err(BooksError::NotFound(b.id.clone()));
            }
            if let Some(owner) = title_owner {
                if owner != &b.id {
                    return Err(BooksError::Conflict(format!(
                        "the title '{}' is book '{owner}''s",
                        b.title
                    )));
                }
            }
            let mut compares = vec![
                cmd::compare(&key, old_book.as_deref()),
                cmd::compare(&tkey, title_owner.as_deref()),
            ];
            let mut ops = vec![cmd::op_put(&key, &json(b)), cmd::op_put(&tkey, &b.id)];
            if let Some(old) = old_book {
                let old = parse(old)?;
                let old_tkey = title_index_key(&old.title);
                if old_tkey != tkey {
                    compares.push(cmd::compare(&old_tkey, Some(&b.id)));
                    ops.push(cmd::op_delete(&old_tkey));
                }
            }
            if c.txn(compares, ops, vec![]).await?.succeeded {
                return Ok(b.clone());
            }
        }
    }

    /// Adds `delta` to a book's stock; never below zero.
    pub async fn add_stock(&self, id: &str, delta: i64) -> Result<Book, BooksError> {
        self.update_with(id, |b| {
            let stock = b.stock.checked_add(delta).unwrap_or(-1);
            if stock < 0 {
                return Err(BooksError::Conflict(format!(
                    "book '{id}' has {} in stock: cannot add {delta}",
                    b.stock
                )));
            }
            b.stock = stock;
            Ok(())
        })
        .await
    }

    /// Changes a book by `f` (read, changed, written back if nobody wrote
    /// it meanwhile, else again): unlike [`BooksDb::set`], a change of the
    /// price or the tags never overwrites a concurrent change of the stock.
    /// The title (indexed) cannot change here.
    pub async fn update_with(
        &self,
        id: &str,
        mut f: impl FnMut(&mut Book) -> Result<(), BooksError>,
    ) -> Result<Book, BooksError> {
        let mut c = self.store.client();
        let key = book_key(id);
        loop {
            let Some(old) = c.get(&key).await? else {
                return Err(BooksError::NotFound(id.to_string()));
            };
            let mut b = parse(&old)?;
            let title = b.title.clone();
            f(&mut b)?;
            if b.title != title || b.id != id {
                return Err(BooksError::Invalid(
                    "update_with cannot change a book's id or title".into(),
                ));
            }
            validate(&b)?;
            if c.cas(&key, Some(&old), Some(&json(&b))).await?.succeeded {
                return Ok(b);
            }
        }
    }

    /// Deletes a book and its title index entry (nothing if absent).
    pub async fn delete(&self, id: &str) -> Result<(), BooksError> {
        let mut c = self.store.client();
        let key = book_key(id);
        loop {
            let Some(old) = c.get(&key).await? else {
                return Ok(());
            };
            let tkey = title_index_key(&parse(&old)?.title);
            let r = c
                .txn(
                    vec![cmd::compare(&key, Some(&old))],
                    vec![cmd::op_delete(&key), cmd::op_delete(&tkey)],
                    vec![],
                )
                .await?;
            if r.succeeded {
                return Ok(());
            }
        }
    }

    /// Loads every catalogue book whose id and title are both absent
    /// (idempotent: a restarted or concurrent seeder changes nothing).
    /// Returns how many it added.
    pub async fn seed(&self, books: &[Book]) -> Result<usize, BooksError> {
        let mut c = self.store.client();
        let mut added = 0;
        for b in books {
            let key = book_key(&b.id);
            let tkey = title_index_key(&b.title);
            let r = c
                .txn(
                    vec![cmd::compare(&key, None), cmd::compare(&tkey, None)],
                    vec![cmd::op_put(&key, &json(b)), cmd::op_put(&tkey, &b.id)],
                    vec![],
                )
                .await?;
            added += r.succeeded as usize;
        }
        Ok(added)
    }
}

fn validate(b: &Book) -> Result<(), BooksError> {
    let bad = |m: &str| Err(BooksError::Invalid(m.to_string()));
    if b.id.is_empty()
        || b.id.len() > 64
        || !b
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return bad("a book id is 1-64 letters, digits, '-' or '_'");
    }
    if title_key(&b.title).is_empty() {
        return bad("a book needs a title");
    }
    if b.price_cents < 0 || b.stock < 0 {
        return bad("price and stock must not be negative");
    }
    Ok(())
}

/// The `Books` gRPC service.
#[derive(Clone)]
pub struct BooksService {
    pub db: BooksDb,
}

#[tonic::async_trait]
impl Books for BooksService {
    async fn list(&self, _: Request<pb::Empty>) -> Result<Response<pb::BookList>, Status> {
        let books = self.db.list().await?;
        Ok(Response::new(pb::BookList {
            books: books.iter().map(book_to_pb).collect(),
        }))
    }

    async fn get(&self, r: Request<pb::BookId>) -> Result<Response<pb::Book>, Status> {
        let id = r.into_inner().id;
        match self.db.get(&id).await? {
            Some(b) => Ok(Response::new(book_to_pb(&b))),
            None => Err(BooksError::NotFound(id).into()),
        }
    }

    async fn find_by_title(&self, r: Request<pb::Title>) -> Result<Response<pb::Book>, Status> {
        let title = r.into_inner().title;
        match self
            .db
            .by_titles(std::slice::from_ref(&title))
            .await?
            .pop()
            .flatten()
        {
            Some(b) => Ok(Response::new(book_to_pb(&b))),
            None => Err(Status::not_found(format!("no book titled '{title}'"))),
        }
    }

    async fn set(&self, r: Request<pb::Book>) -> Result<Response<pb::Book>, Status> {
        let b = book_from_pb(r.into_inner());
        Ok(Response::new(book_to_pb(&self.db.set(&b, false).await?)))
    }

    async fn update(&self, r: Request<pb::Book>) -> Result<Response<pb::Book>, Status> {
        let b = book_from_pb(r.into_inner());
        Ok(Response::new(book_to_pb(&self.db.set(&b, true).await?)))
    }

    async fn add_stock(&self, r: Request<pb::StockChange>) -> Result<Response<pb::Book>, Status> {
        let r = r.into_inner();
        Ok(Response::new(book_to_pb(
            &self.db.add_stock(&r.id, r.delta).await?,
        )))
    }

    async fn delete(&self, r: Request<pb::BookId>) -> Result<Response<pb::Empty>, Status> {
        self.db.delete(&r.into_inner().id).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn seed(&self, _: Request<pb::Empty>) -> Result<Response<pb::BookList>, Status> {
        self.db.seed(&tartu_core::catalogue::seed()).await?;
        self.list(Request::new(pb::Empty {})).await
    }
}
