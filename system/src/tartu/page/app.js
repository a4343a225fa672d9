// The Tartu bookstore's page: catalogue, cart, checkout and the order's
// status, over the orchestrator's REST API at window.TARTU_API (set by
// /config.js; by default port 8081 on this page's host).
//
// Every string from the server is inserted with textContent, never as HTML.
(function () {
  'use strict';

  var API = String(window.TARTU_API || (location.protocol + '//' + location.hostname + ':8081')).replace(/\/+$/, '');
  var APP_VERSION = '1.0.0';
  var POLL_EVERY_MS = 2000;
  var POLL_FOR_MS = 120000;
  var FINAL_STATUSES = { executed: true, failed: true };

  var books = [];          // as GET /books returned them
  var cart = [];           // [{bookId, title, priceCents, stock, quantity}]
  var pollTimer = null;
  var pollGeneration = 0;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k === 'text') node.textContent = String(v);
        else if (k === 'className') node.className = v;
        else if (k.indexOf('on') === 0) node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v === true ? '' : String(v));
      });
    }
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function formatPrice(cents) {
    var n = Number(cents);
    if (!isFinite(n)) return '';
    var sign = n < 0 ? '-' : '';
    n = Math.abs(Math.round(n));
    var whole = String(Math.floor(n / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    var frac = String(n % 100);
    if (frac.length < 2) frac = '0' + frac;
    return sign + '€' + whole + '.' + frac;
  }

  function showMessage(node, text, kind) {
    node.textContent = text;
    node.className = 'message' + (kind ? ' ' + kind : '');
    node.hidden = !text;
  }

  // Parses a JSON body, or returns null when there is none or it is not JSON.
  function readJson(resp) {
    return resp.text().then(function (t) {
      if (!t) return null;
      try { return JSON.parse(t); } catch (e) { return null; }
    });
  }

  function errorMessage(body, resp) {
    if (body && body.error && body.error.message) return String(body.error.message);
    if (body && body.reason) return String(body.reason);
    return 'The bookstore answered ' + resp.status + (resp.statusText ? ' ' + resp.statusText : '') + '.';
  }

  // ---------------------------------------------------------------- catalogue

  function loadCatalogue() {
    var msg = $('catalogue-message');
    return fetch(API + '/books', { headers: { Accept: 'application/json' } })
      .then(function (resp) {
        return readJson(resp).then(function (body) {
          if (!resp.ok) throw new Error(errorMessage(body, resp));
          if (!body || !Array.isArray(body.books)) throw new Error('The bookstore sent an unexpected catalogue.');
          books = body.books;
          renderCatalogue();
          syncCartWithCatalogue();
        });
      }, function () {
        throw new Error('Could not reach the bookstore, try again.');
      })
      .catch(function (err) {
        if (!books.length) $('catalogue').hidden = true;
        showMessage(msg, err.message, 'error');
        var retry = el('button', { type: 'button', className: 'link', id: 'catalogue-retry', text: 'Retry', onclick: function () {
          showMessage(msg, 'Loading the catalogue…');
          loadCatalogue();
        } });
        msg.appendChild(document.createTextNode(' '));
        msg.appendChild(retry);
      });
  }

  function renderCatalogue() {
    var body = $('catalogue-body');
    clear(body);
    books.forEach(function (b) {
      var stock = Number(b.stock) || 0;
      var inCart = cartQuantity(b.bookId);
      var button = el('button', {
        type: 'button',
        className: 'add',
        'data-book-id': b.bookId,
        'aria-label': 'Add ' + (b.title || '') + ' to cart',
        disabled: stock <= 0 || inCart >= stock,
        text: stock <= 0 ? 'Sold out' : 'Add',
        onclick: function () { addToCart(b.bookId); }
      });
      body.appendChild(el('tr', { 'data-book-id': b.bookId }, [
        el('td', { className: 'title', text: b.title || '' }),
        el('td', { text: b.author || '' }),
        el('td', { className: 'num', text: formatPrice(b.priceCents) }),
        el('td', { className: 'num' + (stock <= 0 ? ' out' : ''), text: String(stock) }),
        el('td', { text: b.category || '' }),
        el('td', { className: 'action' }, [button])
      ]));
    });
    $('catalogue').hidden = books.length === 0;
    showMessage($('catalogue-message'), books.length ? '' : 'The catalogue is empty.');
  }

  function findBook(bookId) {
    for (var i = 0; i < books.length; i++) if (books[i].bookId === bookId) return books[i];
    return null;
  }

  // ---------------------------------------------------------------------- cart

  function cartQuantity(bookId) {
    for (var i = 0; i < cart.length; i++) if (cart[i].bookId === bookId) return cart[i].quantity;
    return 0;
  }

  function addToCart(bookId) {
    var book = findBook(bookId);
    if (!book) return;
    var stock = Number(book.stock) || 0;
    var line = null;
    for (var i = 0; i < cart.length; i++) if (cart[i].bookId === bookId) line = cart[i];
    if (line) {
      line.quantity = Math.min(line.quantity + 1, Math.max(stock, 1));
    } else if (stock > 0) {
      cart.push({ bookId: book.bookId, title: book.title, priceCents: Number(book.priceCents) || 0, stock: stock, quantity: 1 });
    }
    renderCart();
    renderCatalogue();
  }

  function setQuantity(bookId, quantity) {
    cart = cart.filter(function (line) {
      if (line.bookId !== bookId) return true;
      var q = Math.floor(Number(quantity));
      if (!isFinite(q) || q < 1) return false;
      line.quantity = line.stock > 0 ? Math.min(q, line.stock) : q;
      return true;
    });
    renderCart();
    renderCatalogue();
  }

  // After the catalogue reloads: prices and stock as the server says now.
  function syncCartWithCatalogue() {
    cart.forEach(function (line) {
      var b = findBook(line.bookId);
      if (b) {
        line.title = b.title;
        line.priceCents = Number(b.priceCents) || 0;
        line.stock = Number(b.stock) || 0;
      }
    });
    renderCart();
  }

  function cartTotal() {
    return cart.reduce(function (sum, line) { return sum + line.priceCents * line.quantity; }, 0);
  }

  function renderCart() {
    var body = $('cart-body');
    clear(body);
    cart.forEach(function (line) {
      var id = line.bookId;
      var qtyId = 'qty-' + String(id).replace(/[^A-Za-z0-9_-]/g, '_');
      var input = el('input', {
        id: qtyId, type: 'number', min: '1', max: line.stock > 0 ? String(line.stock) : null,
        value: String(line.quantity), className: 'qty', 'data-book-id': id,
        onchange: function (e) { setQuantity(id, e.target.value); }
      });
      body.appendChild(el('tr', { 'data-book-id': id }, [
        el('td', { className: 'title' }, [el('label', { for: qtyId, text: line.title || '' })]),
        el('td', { className: 'qty-cell' }, [
          el('button', { type: 'button', className: 'step dec', 'data-book-id': id, 'aria-label': 'One fewer ' + line.title, text: '−',
            onclick: function () { setQuantity(id, line.quantity - 1); } }),
          input,
          el('button', { type: 'button', className: 'step inc', 'data-book-id': id, 'aria-label': 'One more ' + line.title, text: '+',
            disabled: line.stock > 0 && line.quantity >= line.stock,
            onclick: function () { setQuantity(id, line.quantity + 1); } })
        ]),
        el('td', { className: 'num', text: formatPrice(line.priceCents * line.quantity) }),
        el('td', { className: 'action' }, [
          el('button', { type: 'button', className: 'remove link', 'data-book-id': id, 'aria-label': 'Remove ' + line.title, text: 'Remove',
            onclick: function () { setQuantity(id, 0); } })
        ])
      ]));
    });
    $('cart-total').textContent = formatPrice(cartTotal());
    $('cart').hidden = cart.length === 0;
    $('cart-empty').hidden = cart.length !== 0;
  }

  // ------------------------------------------------------------------ checkout

  function value(id) { return $(id).value.trim(); }

  function detectBrowser() {
    var ua = navigator.userAgent || '';
    var table = [
      ['Edge', /Edg\/([\d.]+)/], ['Opera', /OPR\/([\d.]+)/], ['Chrome', /(?:HeadlessChrome|Chrome|Chromium)\/([\d.]+)/],
      ['Firefox', /Firefox\/([\d.]+)/], ['Safari', /Version\/([\d.]+).*Safari/]
    ];
    for (var i = 0; i < table.length; i++) {
      var m = ua.match(table[i][1]);
      if (m) return { name: table[i][0], version: m[1] };
    }
    return { name: 'Unknown', version: '' };
  }

  function detectDevice() {
    var ua = navigator.userAgent || '';
    var os = /Windows/.test(ua) ? 'Windows' : /Android/.test(ua) ? 'Android' : /(iPhone|iPad|iPod)/.test(ua) ? 'iOS'
      : /Mac OS X/.test(ua) ? 'macOS' : /CrOS/.test(ua) ? 'ChromeOS' : /Linux/.test(ua) ? 'Linux' : 'Unknown';
    var type = /iPad|Tablet/.test(ua) ? 'Tablet' : /Mobi|Android|iPhone/.test(ua) ? 'Smartphone' : 'Desktop';
    var model = (navigator.userAgentData && navigator.userAgentData.platform) || navigator.platform || 'Unknown';
    return { type: type, model: String(model), os: os };
  }

  function buildOrder() {
    var s = window.screen || {};
    return {
      user: { name: value('name'), contact: value('contact') },
      creditCard: {
        number: value('card-number').replace(/[\s-]/g, ''),
        expirationDate: value('card-expiry'),
        cvv: value('card-cvv')
      },
      userComment: value('user-comment'),
      items: cart.map(function (line) { return { name: line.title, quantity: line.quantity }; }),
      discountCode: value('discount-code'),
      shippingMethod: $('shipping-method').value,
      giftMessage: value('gift-message'),
      billingAddress: {
        street: value('billing-street'),
        city: value('billing-city'),
        state: value('billing-state'),
        zip: value('billing-zip'),
        country: value('billing-country')
      },
      giftWrapping: $('gift-wrapping').checked,
      termsAccepted: $('terms').checked,
      device: detectDevice(),
      browser: detectBrowser(),
      appVersion: APP_VERSION,
      screenResolution: (s.width && s.height) ? s.width + 'x' + s.height : '',
      referrer: document.referrer || '',
      deviceLanguage: navigator.language || ''
    };
  }

  // Only what the page can tell for sure; the server checks the rest.
  function localProblem() {
    if (!cart.length) return 'Your cart is empty: add a book first.';
    if (!value('name')) return 'Please enter your name.';
    if (!value('contact')) return 'Please enter a contact email.';
    if (!value('card-number')) return 'Please enter a card number.';
    if (!value('card-expiry')) return 'Please enter the card expiry date (MM/YY).';
    if (!value('card-cvv')) return 'Please enter the card CVV.';
    if (!$('terms').checked) return 'Please accept the terms and conditions.';
    return '';
  }

  function submitOrder(e) {
    e.preventDefault();
    var formError = $('form-error');
    var problem = localProblem();
    if (problem) { showMessage(formError, problem, 'error'); return; }
    showMessage(formError, '');

    var button = $('checkout-button');
    button.disabled = true;
    button.textContent = 'Placing order…';
    stopPolling();

    fetch(API + '/checkout', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(buildOrder())
    }).then(function (resp) {
      return readJson(resp).then(function (body) {
        if (resp.ok && body && body.status) showResult(body);
        else showFailure(body, resp);
      });
    }, function () {
      showMessage(formError, 'Could not reach the bookstore, try again.', 'error');
    }).catch(function (err) {
      showMessage(formError, 'Something went wrong showing the answer: ' + (err && err.message), 'error');
    }).then(function () {
      button.disabled = false;
      button.textContent = 'Place order';
    });
  }

  function resetResult() {
    var result = $('result');
    result.hidden = false;
    result.className = '';
    $('result-reason').hidden = true;
    $('result-order').hidden = true;
    $('order-status').hidden = true;
    $('suggestions-block').hidden = true;
    clear($('suggestions'));
  }

  function showResult(body) {
    resetResult();
    var approved = body.status === 'Order Approved';
    $('result').className = approved ? 'approved' : 'rejected';
    $('result-status').textContent = String(body.status);
    if (body.reason) {
      $('result-reason').textContent = String(body.reason);
      $('result-reason').hidden = false;
    }
    if (body.orderId) {
      $('result-order-id').textContent = String(body.orderId);
      $('result-order').hidden = false;
    }
    var list = $('suggestions');
    (Array.isArray(body.suggestedBooks) ? body.suggestedBooks : []).forEach(function (b) {
      list.appendChild(el('li', { 'data-book-id': b.bookId }, [
        el('span', { className: 'title', text: b.title || '' }),
        ' — ',
        el('span', { className: 'author', text: b.author || '' })
      ]));
    });
    $('suggestions-block').hidden = list.children.length === 0;
    if (approved) {
      cart = [];
      renderCart();
      loadCatalogue();
      if (body.orderId) startPolling(String(body.orderId));
    }
    $('result').scrollIntoView({ block: 'nearest' });
  }

  function showFailure(body, resp) {
    resetResult();
    $('result').className = 'rejected';
    $('result-status').textContent = (body && body.status) ? String(body.status) : 'Checkout failed';
    $('result-reason').textContent = errorMessage(body, resp);
    $('result-reason').hidden = false;
    if (body && body.orderId) {
      $('result-order-id').textContent = String(body.orderId);
      $('result-order').hidden = false;
    }
    $('result').scrollIntoView({ block: 'nearest' });
  }

  // ------------------------------------------------------------ order status

  function stopPolling() {
    pollGeneration++;
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
  }

  function setOrderStatus(text, status) {
    var node = $('order-status');
    clear(node);
    node.appendChild(document.createTextNode('Order status: '));
    node.appendChild(el('strong', { className: 'order-state' + (status ? ' state-' + status : ''), text: text }));
    node.hidden = false;
  }

  function startPolling(orderId) {
    stopPolling();
    var generation = pollGeneration;
    var until = Date.now() + POLL_FOR_MS;
    setOrderStatus('checking…', '');

    function poll() {
      fetch(API + '/orders/' + encodeURIComponent(orderId), { headers: { Accept: 'application/json' } })
        .then(function (resp) {
          return readJson(resp).then(function (body) {
            if (generation !== pollGeneration) return false;
            if (resp.ok && body && body.status) {
              var text = String(body.status) + (body.reason ? ' (' + String(body.reason) + ')' : '');
              setOrderStatus(text, String(body.status));
              return !FINAL_STATUSES[body.status];
            }
            setOrderStatus('unknown: ' + errorMessage(body, resp), 'unknown');
            return true;
          });
        }, function () {
          if (generation === pollGeneration) setOrderStatus('could not reach the bookstore, retrying…', 'unknown');
          return true;
        })
        .then(function (again) {
          if (generation !== pollGeneration) return;
          if (again && Date.now() < until) pollTimer = setTimeout(poll, POLL_EVERY_MS);
          else pollTimer = null;
        });
    }
    poll();
  }

  // --------------------------------------------------------------------- start

  function start() {
    $('checkout-form').addEventListener('submit', submitOrder);
    renderCart();
    loadCatalogue();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
